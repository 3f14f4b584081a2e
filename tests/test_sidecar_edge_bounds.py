"""The sidecar's input edge, through the real process: what it takes must be storable here and
on the server, and what it decodes must fit in a tablet's memory.

- Text: no control character or lone surrogate in any body field, path or query parameter (a
  NUL in a note used to be stored and then refused by PostgreSQL on every push).
- AI results come only from the tablet's job runner: the API takes none from outside, from any
  role.
- Every outbox row names records that exist here and fits the server's columns.
- Photos and scanned frames: a decompression bomb of any format is refused from its header,
  and the process's peak memory does not move.

Every refused request is checked for the error shape and that the device did not change: the
row count of every table (outbox included) and the files under images/ and thumbnails/.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import subprocess
import sys
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from sidecar.domain import bounds, image_size
from sidecar.errors import ImageInvalid
from sync.server.apply import SPECS
from tests.support.ai_jobs import judge_here
from tests.support.device_state import state
from tests.support.seed import PASSWORD, QR_JSON, photo_jpeg, seed_device
from tests.support.sidecar import SidecarProcess

JPEG = {"Content-Type": "image/jpeg"}


@dataclass
class Edge:
    proc: SidecarProcess
    logins: dict[str, str]

    @property
    def data_dir(self) -> Path:
        return self.proc.data_dir

    def client(self, who: str = "admin") -> httpx.Client:
        return self.proc.client(**{"X-Kensa-Session": self.logins[who]})

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data_dir / 'kensa.db'}?mode=ro", uri=True)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    data = tmp_path_factory.mktemp("edge")
    seed_device(data / "kensa.db")
    # No AI workers: nothing here queues a job, and warming the models up would move the
    # process's memory while the photo tests measure it.
    proc = SidecarProcess(data, env={"KENSA_AI_WORKERS": "0"})
    proc.start()
    try:
        logins = {}
        with proc.client() as client:
            for who in ("admin", "tanaka"):
                r = client.post("/auth/login", json={"username": who, "password": PASSWORD})
                assert r.status_code == 200, r.text
                logins[who] = r.json()["token"]
        yield Edge(proc, logins)
    finally:
        proc.kill()


@dataclass
class Inspection:
    sid: str
    items: dict[str, str]

    def item(self, code: str) -> str:
        return f"/sessions/{self.sid}/items/{self.items[code]}"


def inspect(edge: Edge, who: str = "admin") -> Inspection:
    with edge.client(who) as client:
        r = client.post("/sessions", json={"qr_code": QR_JSON})
    assert r.status_code == 201, r.text
    return Inspection(r.json()["id"], {i["item_code"]: i["item_id"] for i in r.json()["items"]})


def photograph(edge: Edge, insp: Inspection, code: str = "V-SCRATCH", who: str = "admin") -> str:
    with edge.client(who) as client:
        r = client.post(insp.item(code) + "/images", content=photo_jpeg(7), headers=JPEG)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def refused(
    edge: Edge, method: str, path: str, status: int, code: str | None = None, *,
    who: str = "admin", **kwargs: Any,
) -> dict[str, Any]:
    """Send one request that must be refused; check the error and that nothing changed."""
    before = state(edge.data_dir)
    with edge.client(who) as client:
        r = client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "detail"}, body
    error: dict[str, Any] = body["error"]
    assert error["message"].strip()
    if code is not None:
        assert error["code"] == code, error
    assert state(edge.data_dir) == before, "a refused request changed the device"
    return error


# --- text: control characters and surrogates, in bodies, paths and queries ---------------------

# C0 (NUL, backspace, escape), DEL, C1 (CSI), a lone surrogate: none can be stored for the server.
BAD_CHARS = ["\x00", "\x08", "\x1b", "\x7f", "\x9b", "\ud800"]
# Paths and queries are UTF-8 on the wire, which has no surrogates.
BAD_URL_CHARS = BAD_CHARS[:-1]


@dataclass(frozen=True)
class BodyCase:
    """A request whose body puts ``bad`` in one text field; ``field`` is how the error names it."""

    field: str
    method: str
    path: Callable[[Inspection], str]
    body: Callable[[str, str], dict[str, Any]]  # (bad text, photo id) -> body
    who: str = "admin"


def verdict(**fields: Any) -> dict[str, Any]:
    return {"final_result": "OK", "verification_time": 1.0, **fields}


def scratch(suffix: str) -> Callable[[Inspection], str]:
    return lambda insp: insp.item("V-SCRATCH") + suffix


# fmt: off
BODY_CASES = {
    "login-username": BodyCase("username", "POST", lambda _: "/auth/login",
                               lambda t, _: {"username": f"tanaka{t}", "password": PASSWORD}),
    "login-password": BodyCase("password", "POST", lambda _: "/auth/login",
                               lambda t, _: {"username": "tanaka", "password": PASSWORD + t}),
    "scan-text": BodyCase("text", "POST", lambda _: "/scan/text",
                          lambda t, _: {"text": QR_JSON.replace("A12", f"A{t}12")}),
    "start-qr-code": BodyCase("qr_code", "POST", lambda _: "/sessions",
                              lambda t, _: {"qr_code": QR_JSON.replace("A12", f"A{t}12")}),
    "verdict-notes": BodyCase("notes", "POST", scratch("/verification"),
                              lambda t, _: verdict(notes=f"ok{t}")),
    "analyse-image-id": BodyCase("image_id", "POST", scratch("/analyse"),
                                 lambda t, i: {"image_id": f"{i}{t}"}),
}
# fmt: on


@pytest.fixture
def photographed(edge: Edge) -> tuple[Inspection, str]:
    insp = inspect(edge)
    return insp, photograph(edge, insp)


@pytest.mark.parametrize("bad", BAD_CHARS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("case", BODY_CASES.values(), ids=BODY_CASES.keys())
def test_text_with_a_control_character_is_refused_in_every_body_field(
    edge: Edge, photographed: tuple[Inspection, str], case: BodyCase, bad: str
) -> None:
    insp, image_id = photographed
    # Escaped as JSON allows (\u0000, \ud800): the wire is valid UTF-8, the decoded text is not
    # storable.
    body = json.dumps(case.body(bad, image_id)).encode()
    error = refused(edge, case.method, case.path(insp), 422, "validation_error", content=body,
                    headers={"Content-Type": "application/json"})  # fmt: skip
    assert any(f["field"].startswith(case.field) for f in error["detail"]), error
    assert case.field in error["message"]


# fmt: off
URL_CASES = {
    "history-product": lambda insp, t: ("GET", "/history", {"product": f"BRK{t}"}),
    "history-batch": lambda insp, t: ("GET", "/history", {"batch": f"A12{t}"}),
    "history-status": lambda insp, t: ("GET", "/history", {"status": f"completed{t}"}),
    "history-inspector": lambda insp, t: ("GET", "/history", {"inspector": f"admin{t}"}),
    "stats-product": lambda insp, t: ("GET", "/stats", {"product": f"BRK{t}"}),
    "jobs-session": lambda insp, t: ("GET", "/jobs", {"session_id": f"{insp.sid}{t}"}),
    "session-id": lambda insp, t: ("GET", f"/sessions/{quote(insp.sid + t, safe='')}", None),
    "session-id-complete": lambda insp, t: (
        "POST", f"/sessions/{quote(t + insp.sid, safe='')}/complete", None),
    "item-id": lambda insp, t: (
        "POST", f"/sessions/{insp.sid}/items/{quote('item' + t, safe='')}/skip", None),
    "image-id": lambda insp, t: ("GET", f"/images/{quote('x' + t + 'y', safe='')}", None),
    "job-id": lambda insp, t: ("POST", f"/jobs/{quote('job' + t, safe='')}/cancel", None),
}
# fmt: on


@pytest.mark.parametrize("bad", BAD_URL_CHARS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("case", URL_CASES.values(), ids=URL_CASES.keys())
def test_a_control_character_in_a_path_or_query_parameter_is_refused(
    edge: Edge, case: Callable[[Inspection, str], tuple[str, str, Any]], bad: str
) -> None:
    insp = inspect(edge)
    method, path, params = case(insp, bad)
    error = refused(edge, method, path, 422, "validation_error", params=params)
    assert "control character" in json.dumps(error["detail"]), error


@pytest.mark.parametrize(
    "path", ["/sessions/{x}", "/sessions/{x}/complete", "/images/{x}", "/jobs/{x}"]
)
@pytest.mark.parametrize(
    "bad_id", ["a b", "a;b", "a'b", ".x", "-a", "x" * 65], ids=lambda v: v[:8]
)
def test_a_path_id_that_is_no_record_id_is_refused(edge: Edge, path: str, bad_id: str) -> None:
    method = "POST" if path.endswith("complete") else "GET"
    error = refused(edge, method, path.format(x=quote(bad_id, safe="")), 422, "validation_error")
    assert "not an id" in json.dumps(error["detail"]), error


@pytest.mark.parametrize("notes", ["line 1\nline 2", "a\tb", "windows\r\nline", "検査 OK ✓"])
def test_multi_line_notes_are_stored_verbatim(edge: Edge, notes: str) -> None:
    insp = inspect(edge)
    with edge.client() as client:
        r = client.post(insp.item("V-SCRATCH") + "/verification", json=verdict(notes=notes))
    assert r.status_code == 201, r.text
    with edge.db() as conn:
        (stored,) = conn.execute(
            "SELECT notes FROM human_verification_results WHERE id = ?", (r.json()["id"],)
        ).fetchone()
        (data,) = conn.execute(
            "SELECT data FROM outbox WHERE entity_id = ?", (r.json()["id"],)
        ).fetchone()
    assert stored == notes and json.loads(data)["notes"] == notes


@pytest.mark.parametrize("count", [21, 100])
def test_too_many_or_too_long_defect_types_are_refused(
    edge: Edge, photographed: tuple[Inspection, str], count: int
) -> None:
    insp, _ = photographed
    path = insp.item("D-BORE") + "/verification"
    many = verdict(final_result="NG", severity="major", defect_types=["bore_oversize"] * count)
    refused(edge, "POST", path, 422, "validation_error", json=many)
    long = verdict(final_result="NG", severity="major", defect_types=["b" * 101])
    refused(edge, "POST", path, 422, "validation_error", json=long)


# --- AI results: made by the job runner only ---------------------------------------------------


@pytest.mark.parametrize("who", ["admin", "tanaka"])
def test_no_role_can_post_an_ai_result(edge: Edge, who: str) -> None:
    """The direct POST is gone: a verdict and a confidence no model on this tablet produced
    cannot be put on record by anyone, and the API documents no way to."""
    insp = inspect(edge, who)
    image_id = photograph(edge, insp, who=who)
    body = {"image_id": image_id, "overall_result": "OK", "confidence": 0.9,
            "processing_time": 0.2}
    error = refused(edge, "POST", insp.item("V-SCRATCH") + "/ai-results", 404, who=who,
                    json=body)
    assert "ai-results" in error["message"] or error["code"] == "not_found", error
    with edge.client(who) as client:
        paths = client.get("/openapi.json").json()["paths"]
        detail = client.get(f"/sessions/{insp.sid}").json()
    assert not any("ai-results" in path for path in paths)
    assert all(item["ai_results"] == [] for item in detail["items"])


# --- what the outbox carries: records that exist here, values the server's columns hold ---------

# Master ids come from the server (its UUIDs) or, on a stand-alone tablet, from its own seed:
# they must be rows here. Ids the tablet makes are UUIDs.
MASTER_REFS = {
    "item_id": "inspection_items_master",
    "pipeline_id": "pipelines",
    "master_id": "inspection_targets_master",
}
DEVICE_REFS = {
    "session_id": "inspection_sessions",
    "target_id": "inspection_targets",
    "image_id": "inspection_images",
    "ai_result_id": "ai_inspection_results",
}


def test_every_outbox_row_names_records_here_and_fits_the_servers_columns(edge: Edge) -> None:
    insp = inspect(edge)
    image_id = photograph(edge, insp)
    long_note = "長い備考\n" * 300  # 1,500 characters over several lines
    # The AI result as this tablet's job runner makes it, provenance and all.
    result_id = judge_here(edge.data_dir, insp.sid, insp.items["V-SCRATCH"], image_id)
    with edge.client() as client:
        ng = verdict(final_result="NG", severity="critical", notes=long_note,
                     defect_types=["scratch", "dent"], ai_result_id=result_id)  # fmt: skip
        assert client.post(insp.item("V-SCRATCH") + "/verification", json=ng).status_code == 201
    with edge.db() as conn:
        rows = conn.execute(
            "SELECT entity_type, entity_id, data FROM outbox ORDER BY seq"
        ).fetchall()
        checked = 0
        for entity_type, entity_id, data in rows:
            values = json.loads(data)
            uuid.UUID(entity_id)
            if entity_type == "audit_entry":
                # An audit entry about a synced record names a record here; one about a user
                # (a login) names the user. Neither carries columns of its own to fit.
                if values.get("entity") == "user":
                    assert conn.execute(
                        "SELECT 1 FROM users WHERE username = ?", (values["entity_id"],)
                    ).fetchone()
                elif values["entity_id"] is not None and values.get("entity") in SPECS:
                    assert conn.execute(
                        "SELECT 1 FROM outbox WHERE entity_id = ?", (values["entity_id"],)
                    ).fetchone()
                continue
            table = SPECS[entity_type].table
            for name, value in values.items():
                if value is None or name not in table.c:
                    continue
                column = table.c[name]
                if isinstance(value, str) and isinstance(column.type, sa.String) and (
                    column.type.length
                ):
                    assert len(value) <= column.type.length, (entity_type, name, value)
                    checked += 1
                if name in DEVICE_REFS:
                    uuid.UUID(value)
                if name in {**MASTER_REFS, **DEVICE_REFS}:
                    ref = {**MASTER_REFS, **DEVICE_REFS}[name]
                    found = conn.execute(f"SELECT 1 FROM {ref} WHERE id = ?", (value,)).fetchone()
                    assert found, f"{entity_type}.{name} = {value} is not a row here"
                    checked += 1
    assert checked > 20  # the check looked at the rows of a whole inspection


# --- photos and scanned frames: decompression bombs ---------------------------------------------

EDGE_PX = 16_000  # 256 MP, 768 MB as 8-bit BGR


def _deflated_zero_rows(rows: int, row: bytes) -> bytes:
    packer = zlib.compressobj(1)
    return b"".join([*(packer.compress(row) for _ in range(rows)), packer.flush()])


def png_bomb() -> bytes:
    """A whole, valid grey PNG of 16000 x 16000 pixels in a few hundred kilobytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", EDGE_PX, EDGE_PX, 8, 0, 0, 0, 0)
    idat = _deflated_zero_rows(EDGE_PX, bytes(EDGE_PX + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_bomb() -> bytes:
    """A 16 x 16 JPEG whose frame header claims 16000 x 16000: decoders fill the rest in."""
    ok, encoded = cv2.imencode(".jpg", np.full((16, 16), 128, np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    i = 2
    while data[i + 1] != 0xC0:
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    data[i + 5 : i + 9] = struct.pack(">HH", EDGE_PX, EDGE_PX)
    return bytes(data)


def bmp_bomb() -> bytes:
    """An RLE8 bitmap of 16000 x 16000 in 2 MB."""
    full, rest = divmod(EDGE_PX, 255)
    row = bytes([255, 0]) * full + bytes([rest, 0]) + b"\x00\x00"
    pixels = row * EDGE_PX + b"\x00\x01"
    palette = b"".join(bytes([g, g, g, 0]) for g in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, EDGE_PX, EDGE_PX, 1, 8, 1, len(pixels), 0, 0, 256, 0)
    head = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return head + info + palette + pixels


def tiff_bomb() -> bytes:
    """A deflate-compressed grey TIFF of 16000 x 16000 in one strip."""
    strip = _deflated_zero_rows(EDGE_PX, bytes(EDGE_PX))
    entries = [(256, 4, EDGE_PX), (257, 4, EDGE_PX), (258, 3, 8), (259, 3, 8), (262, 3, 1),
               (273, 4, 8 + 2 + 12 * 9 + 4), (277, 3, 1), (278, 4, EDGE_PX),
               (279, 4, len(strip))]  # fmt: skip
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + strip


def webp_bomb() -> bytes:
    """A lossless WebP header claiming 16383 x 16383 (the format's largest)."""
    bits = (16383 - 1) | ((16383 - 1) << 14)
    payload = b"\x2f" + struct.pack("<I", bits) + bytes(64)
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


BOMBS = {"png": png_bomb, "jpeg": jpeg_bomb, "bmp": bmp_bomb, "tiff": tiff_bomb, "webp": webp_bomb}


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {name: make() for name, make in BOMBS.items()}


def peak_rss_reset(pid: int) -> int:
    """Reset the process's peak resident size to its current one (Linux); return it in bytes."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return peak_rss(pid)


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def upload_bomb(edge: Edge, insp: Inspection, data: bytes, where: str) -> dict[str, Any]:
    if where == "scan":
        return refused(edge, "POST", "/scan", 400, "image_invalid",
                       files={"file": ("label", data, "application/octet-stream")})  # fmt: skip
    return refused(edge, "POST", insp.item("V-SCRATCH") + "/images", 400, "image_invalid",
                   content=data, headers={"Content-Type": "application/octet-stream"})  # fmt: skip


@pytest.mark.parametrize("where", ["photo", "scan"])
@pytest.mark.parametrize("kind", BOMBS)
def test_a_decompression_bomb_is_refused_from_its_header(
    edge: Edge, bombs: dict[str, bytes], kind: str, where: str
) -> None:
    insp = inspect(edge)
    data = bombs[kind]
    assert len(data) < 3_000_000
    error = upload_bomb(edge, insp, data, where)
    assert error["detail"]["reason"] == "too_many_pixels", error
    assert error["detail"]["width"] * error["detail"]["height"] > image_size.MAX_PIXELS
    assert "MP" in error["message"]


def test_decompression_bombs_do_not_grow_the_sidecars_memory(
    edge: Edge, bombs: dict[str, bytes]
) -> None:
    assert edge.proc.proc is not None
    pid = edge.proc.proc.pid
    insp = inspect(edge)
    baseline = peak_rss_reset(pid)
    for kind in ("png", "jpeg", "bmp", "tiff"):  # each decodes to 768 MB or more
        for where in ("photo", "scan"):
            upload_bomb(edge, insp, bombs[kind], where)
    growth = peak_rss(pid) - baseline
    assert growth < 64 * 2**20, f"peak memory grew by {growth / 2**20:.0f} MB"
    # And a real photo still goes through (the reset did not stop the measurement from working).
    photograph(edge, insp)


def test_opencv_refuses_a_bomb_on_its_own_too(bombs: dict[str, bytes], tmp_path: Path) -> None:
    # The second bound, behind the header check: OpenCV's own limit, which it reads once when it
    # loads; importing sidecar sets it first.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bombs["png"])
    script = (
        "import sys, sidecar, cv2, numpy as np\n"
        "data = np.fromfile(sys.argv[1], np.uint8)\n"
        "try:\n"
        "    img = cv2.imdecode(data, cv2.IMREAD_COLOR)\n"
        "except cv2.error:\n"
        "    img = None\n"
        "status = open('/proc/self/status').read()\n"
        "hwm = [l for l in status.splitlines() if l.startswith('VmHWM:')][0].split()[1]\n"
        "print(img is None, int(hwm) * 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "True", "OpenCV decoded a 256 MP image"
    assert int(out[1]) < 400 * 2**20  # the interpreter, numpy and OpenCV, not the bomb


# --- the header reader, table-tested ------------------------------------------------------------


def png_header(w: int, h: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", w, h)


def jpeg_header(w: int, h: int, *, before: bytes = b"") -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + bytes(9)
    sof = b"\xff\xc2" + struct.pack(">HBHH", 17, 8, h, w) + bytes(10)
    return b"\xff\xd8" + app0 + before + sof


def webp_vp8(w: int, h: int) -> bytes:
    return b"RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00" + b"\x00\x00\x00\x9d\x01\x2a" + (
        struct.pack("<HH", w, h)
    )


def webp_vp8x(w: int, h: int) -> bytes:
    size = (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    return b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00" + bytes(4) + size


def bmp_header(w: int, h: int, header: int = 40) -> bytes:
    if header == 12:
        return b"BM" + bytes(12) + struct.pack("<IHH", 12, w, h)
    return b"BM" + bytes(12) + struct.pack("<Iii", header, w, h)


def tiff_header(pages: list[tuple[int, int]], order: str = "<", kind: int = 4) -> bytes:
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    out = bytearray(magic + struct.pack(order + "I", 8))
    for n, (w, h) in enumerate(pages):
        out += struct.pack(order + "H", 2)
        for tag, value in ((256, w), (257, h)):
            packed = struct.pack(order + "HH", value, 0) if kind == 3 else struct.pack(
                order + "I", value)
            out += struct.pack(order + "HHI", tag, kind, 1) + packed
        last = n == len(pages) - 1
        out += struct.pack(order + "I", 0 if last else len(out) + 4)
    return bytes(out)


LIMIT = image_size.MAX_PIXELS  # 10000 x 5000

# fmt: off
HEADER_CASES = [
    pytest.param(png_header(10_000, 5_000), (10_000, 5_000), id="png-at-limit"),
    pytest.param(png_header(10_001, 5_000), None, id="png-over"),
    pytest.param(jpeg_header(10_000, 5_000), (10_000, 5_000), id="jpeg-at-limit"),
    pytest.param(jpeg_header(65_535, 65_535), None, id="jpeg-largest"),
    pytest.param(jpeg_header(10_001, 5_000, before=b"\xff\xff\xff\xd0"), None,
                 id="jpeg-fill-and-restart-markers"),
    pytest.param(webp_vp8(10_000, 5_000), (10_000, 5_000), id="webp-lossy-at-limit"),
    pytest.param(webp_vp8(16_383, 16_383), None, id="webp-lossy-largest"),
    pytest.param(webp_vp8x(10_000, 5_000), (10_000, 5_000), id="webp-extended-at-limit"),
    pytest.param(webp_vp8x(100_000, 100_000), None, id="webp-extended-huge"),
    pytest.param(bmp_header(10_000, -5_000), (10_000, 5_000), id="bmp-top-down-at-limit"),
    pytest.param(bmp_header(10_001, 5_000, 124), None, id="bmp-v5-over"),
    pytest.param(bmp_header(60_000, 60_000, 12), None, id="bmp-os2-over"),
    pytest.param(tiff_header([(10_000, 5_000)]), (10_000, 5_000), id="tiff-at-limit"),
    pytest.param(tiff_header([(10_001, 5_000)], ">"), None, id="tiff-big-endian-over"),
    pytest.param(tiff_header([(60_000, 60_000)], kind=3), None, id="tiff-short-over"),
    pytest.param(tiff_header([(100, 100), (20_000, 20_000)]), None, id="tiff-second-page-over"),
]
# fmt: on


@pytest.mark.parametrize("data,accepted", HEADER_CASES)
def test_image_size_from_the_header(data: bytes, accepted: tuple[int, int] | None) -> None:
    if accepted is not None:
        assert image_size.check(data) == accepted
        return
    with pytest.raises(ImageInvalid) as caught:
        image_size.check(data)
    assert caught.value.detail["reason"] == "too_many_pixels"
    assert caught.value.detail["width"] * caught.value.detail["height"] > LIMIT


@pytest.mark.parametrize(
    "data",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00", b"\xff\xd8\xff\xe0\x00", b"\xff\xd8\xff\xda",
     b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"BM\x00", b"II*\x00\xff\xff\xff\xff", b"GIF89a",
     png_header(0, 10)],
    ids=["png-cut", "jpeg-cut", "jpeg-scan-first", "webp-cut", "bmp-cut", "tiff-bad-offset",
         "gif", "png-no-pixels"],
)  # fmt: skip
def test_an_image_whose_size_cannot_be_read_is_refused(data: bytes) -> None:
    with pytest.raises(ImageInvalid) as caught:
        image_size.check(data)
    assert caught.value.detail["reason"] == "undecodable"


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".bmp", ".tiff"])
def test_real_encoders_headers_are_read(ext: str) -> None:
    ok, encoded = cv2.imencode(ext, np.zeros((123, 457, 3), np.uint8))
    assert ok
    assert image_size.dimensions(encoded.tobytes()) == (457, 123)


# --- the text rule, table-tested ----------------------------------------------------------------

# fmt: off
TEXT_CASES = [
    ("plain", True, True), ("検査 ✓", True, True), ("a\tb", True, False),
    ("a\nb", True, False), ("a\r\nb", True, False), ("a\x00", False, False),
    ("\x1b[31m", False, False), ("a\x7f", False, False), ("a\x85", False, False),
    ("a\ud800", False, False), ("\u2028", True, True),
]
# fmt: on


@pytest.mark.parametrize("text,multiline_ok,line_ok", TEXT_CASES)
def test_text_rule(text: str, multiline_ok: bool, line_ok: bool) -> None:
    assert (bounds.forbidden_character(text) is None) is multiline_ok
    assert (bounds.forbidden_character(text, multiline=False) is None) is line_ok

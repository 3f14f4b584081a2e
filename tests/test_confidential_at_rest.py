"""A lost tablet gives nothing away: a whole inspection through the real sidecar, synced to a real
server, leaves no byte under the data folder that reads as what it recorded.

The demo site is published on a PostgreSQL server; a tablet connects with its device token and
pulls the users, BRK-100 and the models; the sidecar starts as the shell starts it (the data key
as the first line on its stdin). An inspector logs in, scans the unit's QR code, photographs
every item (JPEG and PNG), the job runner judges each photo with the pulled models, the
inspector gives verdicts (one NG naming a defect type) and completes it, signed; the tablet
syncs. Then the sidecar stops and every file under the data folder (the database with its -wal
and -shm, the photos, the thumbnails, the models, the logs) is read whole: no username, no QR
text, no defect type, no device token, no SQLite header, no JPEG or PNG. Started again with the
same key, the sidecar shows the same inspection, its photos as they were taken.

The dev tooling's shift driver takes the key as the ``kensa`` commands do, and keeps its tablet
encrypted the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from schema.migrate import SQLITE_MAGIC, upgrade_device
from scripts.devkit import synthetic
from scripts.devkit.seed_demo import DEMO_USERS
from scripts.devkit.seed_demo import app as seed_demo_app
from sidecar import key_source, photo_crypto
from sidecar.app import create_app
from sidecar.cli import app as kensa_app
from sidecar.domain import signatures
from sidecar.keys import DataKey
from sidecar.settings import Settings
from tests.support.ai_jobs import analyse
from tests.support.seed import qr_png
from tests.support.sidecar import SidecarProcess
from tests.support.sync_harness import REPO, ServerProcess, seed_site, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HELD_OUT = 9_100_000  # seeds the demo models never saw (scripts/devkit/models/manifest.json)
INSPECTOR, PASSWORD = "tanaka", "tanaka-demo"
BATCH, SERIAL = "Q77-4321", "SN-K7Q2-559018"
QR_TEXT = json.dumps({"product_id": "BRK-100", "batch_id": BATCH, "serial": SERIAL})
# Codes from the catalogue the item offers: public words, so not among the forbidden ones (the
# note is the inspector's own text).
DEFECT_TYPES = ["scratch", "dent"]
# Words no library, model or log format would hold by chance: found, they came from this test.
NOTE = "右上の刻印付近に微細な打痕 (note K9-77)"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"


def _run(command: typer.Typer, *args: str, env: dict[str, str | None] | None = None) -> str:
    result = CliRunner().invoke(command, list(args), catch_exceptions=False, env=env)
    assert result.exit_code == 0, result.output
    return result.output


# --- what a file must not hold -------------------------------------------------------------------

# JPEG segments that may follow SOI in a file a camera or an encoder writes: APPn, DQT, DHT, SOFn,
# DRI, COM.
_JPEG_HEADER_MARKERS = frozenset(
    [*range(0xE0, 0xF0), 0xDB, 0xC4, 0xC0, 0xC1, 0xC2, 0xDD, 0xFE]
)


def _jpeg_at(content: bytes, at: int) -> bool:
    """Whether a JPEG starts at ``at``: SOI, then a chain of header segments, each length
    leading to the next marker, up to a frame header or the start of the scan.

    The bare three bytes FF D8 FF occur in random bytes once per 16 MiB, so in the megabytes of
    ciphertext a store and its photos are, a search for them alone would fail about one run in
    ten with nothing in clear; the segment chain behind them is what a JPEG reader needs and
    what chance does not give (one in several hundred thousand per hit)."""
    pos, segments = at + 2, 0
    while pos + 4 <= len(content) and content[pos] == 0xFF:
        marker = content[pos + 1]
        if marker == 0xDA or (0xC0 <= marker <= 0xC2 and segments):
            return segments >= 1
        if marker not in _JPEG_HEADER_MARKERS:
            return False
        length = int.from_bytes(content[pos + 2 : pos + 4], "big")
        if length < 2:
            return False
        pos += 2 + length
        segments += 1
    return False


def _findings(content: bytes, forbidden: dict[str, bytes]) -> list[str]:
    found = [name for name, value in forbidden.items() if value in content]
    if PNG_MAGIC in content:
        found.append("a PNG signature")
    at = content.find(JPEG_SOI)
    while at != -1:
        if _jpeg_at(content, at):
            found.append(f"a JPEG at byte {at}")
            break
        at = content.find(JPEG_SOI, at + 1)
    return found


def _scan(data_dir: Path, forbidden: dict[str, bytes]) -> dict[str, list[str]]:
    """Every file under ``data_dir`` read whole, nothing skipped (the models too: they are not
    secret, yet a copy of anything the inspection recorded in them would still be a leak)."""
    problems: dict[str, list[str]] = {}
    for path in sorted(data_dir.rglob("*")):
        if path.is_file():
            found = _findings(path.read_bytes(), forbidden)
            if found:
                problems[str(path.relative_to(data_dir))] = found
    return problems


def test_the_scan_finds_a_photo_or_a_name_left_in_clear(tmp_path: Path) -> None:
    """The scan below can fail: plain photos, a plain SQLite file and a name in a log are found,
    while random bytes full of FF D8 FF are not taken for a JPEG."""
    data = tmp_path / "data"
    (data / "images" / "ab").mkdir(parents=True)
    (data / "logs").mkdir()
    photo = synthetic.encode(synthetic.make_surface(HELD_OUT, None), ".jpg")
    (data / "images" / "ab" / "photo").write_bytes(b"\x00" * 100 + photo)
    (data / "thumb.png").write_bytes(synthetic.encode(synthetic.make_marking("LOT A12-3456", 1)))
    upgrade_device(data / "kensa.db", key=None)
    (data / "logs" / "sidecar.log").write_text(f"login {INSPECTOR}\n")
    rng = np.random.default_rng(7)
    noise = bytearray(rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())
    for at in range(0, len(noise) - 8, 4096):
        noise[at : at + 4] = JPEG_SOI + bytes([0xE0 + at % 16])
    (data / "noise.bin").write_bytes(bytes(noise))
    forbidden = {"the inspector's name": INSPECTOR.encode(), "the SQLite header": SQLITE_MAGIC}
    assert _scan(data, forbidden) == {
        "images/ab/photo": ["a JPEG at byte 100"],
        "thumb.png": ["a PNG signature"],
        "kensa.db": ["the SQLite header"],
        "logs/sidecar.log": ["the inspector's name"],
    }


# --- the inspection ------------------------------------------------------------------------------


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The demo site on PostgreSQL with its server running, and a tablet that pulled it with its
    key in a 0600 file outside its data folder (as ``kensa`` commands on a desk take it)."""
    storage = (tmp_path / "files").as_uri()
    tokens = tmp_path / "tokens.json"
    out = _run(seed_demo_app, "--database-url", pg_url, "--storage", storage,
               "--data-dir", str(tmp_path / "seed"), "--tokens-file", str(tokens))
    assert "note: model" not in out  # every demo model was published
    data_dir = tmp_path / "device"
    key = DataKey.generate()
    key_source.write_key_file(tmp_path / "tablet.key", key)
    keyed: dict[str, str | None] = {"KENSA_KEY_FILE": str(tmp_path / "tablet.key"),
                                    "KENSA_PLAINTEXT": None}
    token = json.loads(tokens.read_text())["TAB-01"]
    with ServerProcess(pg_url, tmp_path / "server", storage=storage) as server:
        _run(kensa_app, "device", "connect", "--server", server.url, "--token", token,
             "--data-dir", str(data_dir), env=keyed)
        pulled = _run(kensa_app, "device", "sync-now", "--data-dir", str(data_dir), env=keyed)
        assert json.loads(pulled)["ok"]
        yield {"data_dir": data_dir, "key": key, "token": token, "keyed": keyed,
               "files": tmp_path / "files", "stderr": tmp_path / "sidecar-stderr.log"}


def _photos() -> dict[str, bytes]:
    """A photo per photographed item, as a camera or an upload gives them: JPEG and PNG."""
    return {
        "V-SCRATCH": synthetic.encode(synthetic.make_surface(HELD_OUT + 1, "scratch"), ".jpg"),
        "V-FOREIGN": synthetic.encode(synthetic.make_surface(HELD_OUT + 2, None), ".jpg"),
        "T-MARKING": synthetic.encode(synthetic.make_marking(f"LOT {BATCH}", 11)),
        "D-BORE": synthetic.encode(synthetic.make_bore(12.0, HELD_OUT + 3), ".jpg"),
    }


def _signature(meaning: signatures.Meaning | None) -> dict[str, Any]:
    return {} if meaning is None else {"signature": {"password": PASSWORD,
                                                     "meaning": meaning.value}}


def _inspect(client: httpx.Client, photos: dict[str, bytes]) -> tuple[str, dict[str, str]]:
    """The whole inspection; returns its id and each photo's id by item code."""
    scan = client.post("/scan", files={"file": ("label.png", qr_png(QR_TEXT), "image/png")})
    assert scan.status_code == 200, scan.text
    assert (scan.json()["unit"]["batch_id"], scan.json()["unit"]["serial"]) == (BATCH, SERIAL)
    started = client.post("/sessions", json={"qr_code": QR_TEXT})
    assert started.status_code == 201, started.text
    sid: str = started.json()["id"]
    image_ids: dict[str, str] = {}
    for item in started.json()["items"]:
        code, item_id = item["item_code"], item["item_id"]
        ai: dict[str, Any] | None = None
        if code in photos:
            up = client.post(f"/sessions/{sid}/items/{item_id}/images", content=photos[code],
                             headers={"Content-Type": "image/jpeg"})
            assert up.status_code == 201, up.text
            image_ids[code] = up.json()["id"]
            ai = analyse(client, sid, item_id, image_ids[code], timeout=120)
        # The scratched face is NG, with the defect types; every other item is what it is.
        final = "NG" if code == "V-SCRATCH" else "OK"
        body: dict[str, Any] = {"final_result": final, "verification_time": 4.2}
        if final == "NG":
            body.update(defect_types=DEFECT_TYPES, severity="major", notes=NOTE)
        if ai is not None:
            body["ai_result_id"] = ai["id"]
        needed = signatures.for_verdict(final, ai["overall_result"] if ai else None, None)
        verdict = client.post(f"/sessions/{sid}/items/{item_id}/verification",
                              json={**body, **_signature(needed)})
        assert verdict.status_code == 201, verdict.text
    done = client.post(f"/sessions/{sid}/complete",
                       json=_signature(signatures.Meaning.APPROVED))
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["result"]) == ("completed", "NG")
    return sid, image_ids


def _login(client: httpx.Client) -> None:
    login = client.post("/auth/login", json={"username": INSPECTOR, "password": PASSWORD})
    assert login.status_code == 200, login.text
    client.headers["X-Kensa-Session"] = login.json()["token"]


def test_a_whole_inspection_leaves_nothing_readable_on_the_tablet(site: dict[str, Any]) -> None:
    data_dir: Path = site["data_dir"]
    key: DataKey = site["key"]
    photos = _photos()
    sidecar = SidecarProcess(data_dir, key=key, stderr_path=site["stderr"])
    ready = sidecar.start()
    assert ready["encrypted"] is True
    try:
        with sidecar.client() as client:
            assert client.get("/health").json()["encrypted"] is True
            _login(client)
            sid, image_ids = _inspect(client, photos)
            # The sidecar's own sync pushes the inspection and uploads its photos.
            synced = client.post("/sync/now", params={"wait": "true"}, timeout=120)
            assert synced.status_code == 200, synced.text
            for code, photo in photos.items():
                held = site["files"] / hashlib.sha256(photo).hexdigest()[:2] / \
                    hashlib.sha256(photo).hexdigest()
                wait_until(held.is_file, 60, what=f"the {code} photo on the server")
                assert held.read_bytes() == photo  # it left the tablet as itself
            wait_until(lambda: client.get("/sync/status").json()["pending_rows"] == 0, 60,
                       what="every record on the server")

            # Applied, not only received: the history's sync state is final, so the same key
            # must give the same history back after the restart.
            def applied() -> bool:
                client.post("/sync/now", params={"wait": "true"}, timeout=120)
                rows = client.get("/history").json()["rows"]
                return [r["sync_state"] for r in rows if r["id"] == sid] == ["applied"]

            wait_until(applied, 60, what="the inspection applied on the server")
            before = client.get(f"/sessions/{sid}").json()
            history = client.get("/history").json()
    finally:
        assert sidecar.close_stdin_and_wait() == 0

    # What the inspection recorded, and what would open the tablet's account on the server.
    forbidden = {f"user {name}": name.encode() for name, *_ in DEMO_USERS}
    forbidden.update({
        "the QR text": QR_TEXT.encode(),
        "the serial": SERIAL.encode(),
        "the batch": BATCH.encode(),
        "the note": NOTE.encode(),
        "the device token": site["token"].encode(),
        "the SQLite header": SQLITE_MAGIC,
    })
    assert all(len(v) >= 5 for v in forbidden.values())  # too short would match by chance
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    names = {str(p.relative_to(data_dir)) for p in files}
    # The scan covers what the run wrote: the store with its WAL, photos, thumbnails, models,
    # the log (a clean stop checkpoints the WAL; its -shm may go, its -wal stays, empty or not).
    assert {"kensa.db", "logs/sidecar.log"} <= names, names
    assert any(n.startswith("images/") for n in names) and any(
        n.startswith("thumbnails/") for n in names) and any(
        n.startswith("models/") for n in names), names
    assert _scan(data_dir, forbidden) == {}
    # The sidecar's stderr goes to the shell, outside the data folder, with the log's lines: it
    # names nothing either.
    assert _findings(site["stderr"].read_bytes(), forbidden) == []

    # The same key opens it all again: the inspection, its history, its photos as taken.
    again = SidecarProcess(data_dir, key=key, stderr_path=site["stderr"])
    again.start()
    try:
        with again.client() as client:
            _login(client)
            after = client.get(f"/sessions/{sid}")
            assert after.status_code == 200, after.text
            assert after.json() == before
            assert after.json()["qr_code"] == QR_TEXT
            ng = next(i for i in after.json()["items"] if i["item_code"] == "V-SCRATCH")
            assert ng["verifications"][-1]["defect_types"] == DEFECT_TYPES
            assert client.get("/history").json() == history
            assert any(r["id"] == sid for r in history["rows"])
            for code, image_id in image_ids.items():
                served = client.get(f"/images/{image_id}")
                assert served.status_code == 200, served.text
                assert served.content == photos[code], code
                thumb = client.get(f"/images/{image_id}/thumbnail")
                assert thumb.status_code == 200 and cv2.imdecode(
                    np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR) is not None
    finally:
        assert again.close_stdin_and_wait() == 0


def test_the_settings_screen_learns_a_plaintext_store_from_health(tmp_path: Path) -> None:
    """``GET /health`` says whether the store is encrypted: false only without a data key (the
    development store KENSA_PLAINTEXT=1 allows), which the settings screen shows as a warning."""
    assert os.environ.get("KENSA_PLAINTEXT") == "1"
    settings = Settings(data_dir=tmp_path, token="t" * 32, ui_dist=None)
    upgrade_device(settings.database_path)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert client.get("/health").json()["encrypted"] is False


def _shift(
    data_dir: Path, server_url: str, token: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The shift driver (``python -m scripts.devkit.shift``) as a desk runs it: no plaintext store
    allowed, the key only where ``env`` puts it."""
    base = {k: v for k, v in os.environ.items() if k not in ("KENSA_PLAINTEXT", "KENSA_KEY_FILE")}
    return subprocess.run(
        [sys.executable, "-m", "scripts.devkit.shift", "--data-dir", str(data_dir),
         "--server", server_url, "--inspections", "2", "--sync-interval", "0.5",
         "--exit-when-synced"],
        env={**base, "KENSA_DEVICE_TOKEN": token, **env},
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )


def test_the_shift_driver_takes_the_tablets_key_as_the_kensa_commands_do(
    pg_url: str, tmp_path: Path
) -> None:
    """Given the key file, its store and photos are encrypted and the photos reach the server as
    themselves; with no key it stops with exit 2 before it writes anything."""
    files = tmp_path / "files"
    site = seed_site(pg_url, files.as_uri())
    key_file = tmp_path / "tablet.key"
    key_source.write_key_file(key_file, DataKey.generate())
    with ServerProcess(pg_url, tmp_path / "server", storage=files.as_uri()) as server:
        token = site.tokens["TAB-01"]
        refused = _shift(tmp_path / "nokey", server.url, token,
                         PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert json.loads(refused.stdout.splitlines()[-1])["event"] == "error"
        assert not (tmp_path / "nokey").exists()

        data_dir = tmp_path / "tab01"
        done = _shift(data_dir, server.url, token, KENSA_KEY_FILE=str(key_file))
        assert done.returncode == 0, done.stderr[-3000:]
        assert '"synced"' in done.stdout
    assert not (data_dir / "kensa.db").read_bytes().startswith(SQLITE_MAGIC)
    photos = [p for p in (data_dir / "images").rglob("*") if p.is_file()]
    assert photos and all(photo_crypto.is_encrypted(p) for p in photos)
    for photo in photos:
        held = files / photo.name[:2] / photo.name
        assert hashlib.sha256(held.read_bytes()).hexdigest() == photo.name

"""The sidecar API against bad input: a clear 4xx in the one error shape, and nothing half-written.

Every refused request below is checked three ways: its status, its ``{"error": {"code",
"message", "detail"}}`` body, and the device afterwards — the row count of every table (outbox
included) and the files under ``images/`` and ``thumbnails/`` must be exactly as before.

The app runs in-process (``TestClient`` as a context manager, so the lifespan opens the database)
on a copy of one seeded device file per module: argon2 is slow on purpose, so the seed and the
login happen once and each test starts from a byte copy of their result. The case tables are
kept one request per line (``fmt: off``) so they read as tables.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from sidecar.app import create_app
from sidecar.settings import Settings
from tests.support.device_state import State, Template, make_template, state
from tests.support.seed import PASSWORD, QR_JSON, photo_jpeg, qr_png

TOKEN = "t"
MiB = 1024 * 1024
SQL = ("'; DROP TABLE users; --", '" OR 1=1 --', "1; DELETE FROM outbox WHERE 1=1")
ITEM_KEYS = {
    "V-SCRATCH": "scratch",
    "V-FOREIGN": "foreign",
    "T-MARKING": "marking",
    "D-BORE": "bore",
    "F-PISTON": "piston",
}
# A well-formed id (a UUID, as the tablet makes them) that names no record on the tablet.
NO_RECORD = "00000000-0000-4000-8000-000000000000"
VERIFY_OK = {"final_result": "OK", "verification_time": 1.0}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return make_template(tmp_path_factory.mktemp("template"))


@dataclass
class Api:
    client: TestClient
    data_dir: Path
    login: str
    admin_login: str
    ids: dict[str, str] = field(default_factory=dict)

    def headers(self, *, auth: bool = True, login: bool = True) -> dict[str, str]:
        out = {}
        if auth:
            out["Authorization"] = f"Bearer {TOKEN}"
        if login:
            out["X-Kensa-Session"] = self.login
        return out

    def post(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        merged = {**self.headers(), **(headers or {})}
        return self.client.post(path.format(**self.ids), headers=merged, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path.format(**self.ids), headers=self.headers(), **kwargs)

    def state(self) -> State:
        return state(self.data_dir)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data_dir / 'kensa.db'}?mode=ro", uri=True)


@pytest.fixture
def api(tmp_path: Path, template: Template) -> Iterator[Api]:
    template.copy_to(tmp_path)
    # No AI workers: nothing here queues a job, and an idle worker would only poll the database.
    app = create_app(Settings(data_dir=tmp_path, token=TOKEN, ai_workers=0))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield Api(client, tmp_path, template.token, template.admin_token)


def start(api: Api) -> None:
    r = api.post("/sessions", json={"qr_code": QR_JSON})
    assert r.status_code == 201, r.text
    api.ids["sid"] = r.json()["id"]
    for item in r.json()["items"]:
        api.ids[ITEM_KEYS[item["item_code"]]] = item["item_id"]


def verify(api: Api, key: str, body: dict[str, Any] = VERIFY_OK) -> Any:
    r = api.post(f"/sessions/{{sid}}/items/{{{key}}}/verification", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def complete(api: Api) -> None:
    start(api)
    for key in ITEM_KEYS.values():
        verify(api, key)
    r = api.post("/sessions/{sid}/complete")
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text


SETUPS = {"none": lambda api: None, "started": start, "completed": complete}


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "detail"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"].strip()
    assert error["detail"] is None or isinstance(error["detail"], dict | list)
    if code is not None:
        assert error["code"] == code, error
    return error


@dataclass(frozen=True)
class Case:
    """One refused request; ``path`` may name ``{sid}`` and the items (``{scratch}`` …).

    A body (``content``, ``files`` …) may be given as a function, to build a big one per test.
    """

    method: str
    path: str
    status: int
    code: str | None = None
    setup: str = "started"
    json: Any = None
    content: Any = None
    files: Any = None
    data: Any = None
    params: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    auth: bool = True
    login: bool = True
    says: tuple[str, ...] = ()


def refused(api: Api, case: Case) -> dict[str, Any]:
    """Send ``case`` after its setup; check the error and that the device did not change."""
    SETUPS[case.setup](api)
    before = api.state()
    bodies = ("json", "content", "files", "data", "params")
    kwargs = {k: getattr(case, k) for k in bodies if getattr(case, k) is not None}
    kwargs = {k: v() if callable(v) else v for k, v in kwargs.items()}
    headers = {**api.headers(auth=case.auth, login=case.login), **case.headers}
    r = api.client.request(case.method, case.path.format(**api.ids), headers=headers, **kwargs)
    error = assert_error(r, case.status, case.code)
    for text in case.says:
        assert text in error["message"], error
    after = api.state()
    # Nothing is written but, for a failed login or a 403, its own audit entry (and that entry's
    # outbox row): no record's.
    assert after.counts["outbox"] - after.counts["audit_log"] == (
        before.counts["outbox"] - before.counts["audit_log"]
    ), "an outbox row was written"

    def rest(s: Any) -> tuple[dict[str, int], Any]:
        return {k: n for k, n in s.counts.items() if k not in ("outbox", "audit_log")}, s.files

    assert rest(after) == rest(before), "a refused request changed the device"
    return error


def p(case_id: str, *args: Any, **kwargs: Any) -> Any:
    return pytest.param(Case(*args, **kwargs), id=case_id)


# --- the gate: API token, Host, login ---------------------------------------------------------

START: dict[str, Any] = {"json": {"qr_code": QR_JSON}, "setup": "none"}
FORGED = "eyJ1IjogMSwgImUiOiA0MTAyNDQ0ODAwLCAidiI6IDF9.c2ln"  # {"u": 1, ...} with a made-up sig


# fmt: off
GATE_CASES = [
    p("no-authorization", "POST", "/sessions", 401, "unauthorized", auth=False, **START),
    p("wrong-token", "POST", "/sessions", 401, "unauthorized", auth=False,
      headers={"Authorization": "Bearer nope"}, **START),
    p("token-twice", "POST", "/sessions", 401, "unauthorized", auth=False,
      headers={"Authorization": f"Bearer {TOKEN}{TOKEN}"}, **START),
    p("bearer-without-token", "POST", "/sessions", 401, "unauthorized", auth=False,
      headers={"Authorization": "Bearer"}, **START),
    p("bearer-token-and-more", "POST", "/sessions", 401, "unauthorized", auth=False,
      headers={"Authorization": f"Bearer {TOKEN} {TOKEN}"}, **START),
    p("token-without-scheme", "POST", "/sessions", 401, "unauthorized", auth=False,
      headers={"Authorization": TOKEN}, **START),
    p("basic-scheme", "POST", "/sessions", 401, "unauthorized", auth=False,
      headers={"Authorization": "Basic dDp0"}, **START),
    p("empty-authorization", "POST", "/sessions", 401, "unauthorized", auth=False,
      headers={"Authorization": ""}, **START),
    p("get-without-token", "GET", "/sessions/interrupted", 401, "unauthorized", auth=False,
      setup="none"),
    p("foreign-host", "POST", "/sessions", 403, "host_not_allowed",
      headers={"Host": "evil.example"}, **START),
    p("foreign-host-with-port", "GET", "/health", 403, "host_not_allowed",
      headers={"Host": "evil.example:8000"}, setup="none"),
    p("loopback-lookalike-host", "POST", "/sessions", 403, "host_not_allowed",
      headers={"Host": "127.0.0.1.nip.io"}, **START),
    p("localhost-subdomain-host", "POST", "/sessions", 403, "host_not_allowed",
      headers={"Host": "localhost.evil.example:80"}, **START),
    p("no-login", "POST", "/sessions", 401, "login_required", login=False, **START),
    p("garbage-login", "POST", "/sessions", 401, "login_invalid",
      headers={"X-Kensa-Session": "garbage"}, **START),
    p("forged-login", "POST", "/sessions", 401, "login_invalid",
      headers={"X-Kensa-Session": FORGED}, **START),
]
# fmt: on


@pytest.mark.parametrize("case", GATE_CASES)
def test_gate(api: Api, case: Case) -> None:
    refused(api, case)


def test_tampered_login_token(api: Api) -> None:
    body, sig = api.login.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    tampered = {"X-Kensa-Session": f"{body}.{flipped}"}
    refused(api, Case("POST", "/sessions", 401, "login_invalid", headers=tampered, **START))


# --- scans: unknown products and malformed payloads -------------------------------------------

UNKNOWN_PRODUCTS = [
    '{"product_id": "XYZ-999", "batch_id": "B-1"}',
    "WO-1,INS-1,XYZ-999,M-01,2026-01-05,7",
    "XYZ-999_B-1_20260105T0800",
]
BOTH_WAYS = pytest.mark.parametrize(
    "path,field", [("/scan/text", "text"), ("/sessions", "qr_code")], ids=["scan", "start"]
)


@BOTH_WAYS
@pytest.mark.parametrize("text", UNKNOWN_PRODUCTS, ids=["json", "csv", "legacy"])
def test_unknown_product(api: Api, path: str, field: str, text: str) -> None:
    case = Case("POST", path, 404, "product_not_found", json={field: text}, setup="none")
    error = refused(api, case)
    assert "XYZ-999" in error["message"]
    assert error["detail"] == {"product_code": "XYZ-999"}


WORK_ORDER = {
    "workOrderId": "WO-1",
    "instructionId": "INS-1",
    "productCode": "BRK-100",
    "machineNumber": "M-01",
    "productionDate": "2026-01-05",
    "monthlySequence": 7,
}


def work_order(**changes: Any) -> str:
    return json.dumps({k: v for k, v in {**WORK_ORDER, **changes}.items() if v is not None})


# fmt: off
MALFORMED_QR = [
    pytest.param('{"batch_id": "A12-3456"}', id="json-missing-product_id"),
    pytest.param('{"product_id": "BRK-100"}', id="json-missing-batch_id"),
    pytest.param('{"product_id": "BRK-100", "batch_id": "A1", "product_id": "PMP-220"}',
                 id="json-duplicate-key"),
    pytest.param('{"product_id": "BRK-100", "batch_id": ', id="json-cut-short"),
    pytest.param(work_order(monthlySequence="x"), id="work-order-sequence-x"),
    pytest.param(work_order(productionDate="2026-02-30"), id="work-order-impossible-date"),
    pytest.param(work_order(machineNumber=None), id="work-order-missing-field"),
    pytest.param("WO-1,INS-1,BRK-100,M-01,2026-01-05", id="csv-5-fields"),
    pytest.param("WO-1,INS-1,BRK-100,M-01,2026-01-05,7,extra", id="csv-7-fields"),
    pytest.param("BRK-100_A12-3456", id="legacy-without-timestamp"),
    pytest.param("BRK-100_A12-3456_20261399T2500", id="legacy-impossible-timestamp"),
    pytest.param("BRK100", id="no-format"),
    pytest.param(SQL[0], id="sql-drop"),
    pytest.param(SQL[1], id="sql-or"),
    pytest.param('{"product_id": "BRK-100\'; DROP TABLE users; --", "batch_id": "A1"}',
                 id="sql-in-json-field"),
]
# fmt: on


@BOTH_WAYS
@pytest.mark.parametrize("text", MALFORMED_QR)
def test_malformed_qr_payload(api: Api, path: str, field: str, text: str) -> None:
    case = Case("POST", path, 400, "qr_payload_invalid", json={field: text}, setup="none")
    error = refused(api, case)
    assert error["detail"]["looks_like"]


@BOTH_WAYS
def test_blank_qr_text_is_a_validation_error(api: Api, path: str, field: str) -> None:
    refused(api, Case("POST", path, 422, "validation_error", json={field: "   "}, setup="none"))


def png(img: Any) -> bytes:
    ok, encoded = cv2.imencode(".png", img)
    assert ok
    return bytes(encoded.tobytes())


def huge_png() -> bytes:
    """A valid header that claims 100,000 x 100,000 pixels: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    header = (100_000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    idat = zlib.compress(b"\x00" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def chunked(data: bytes, size: int = 1 << 16) -> Iterator[bytes]:
    """A generator body goes out without Content-Length, past the Guard's header check."""
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


def multipart(payload: bytes) -> bytes:
    return (
        b'--XX\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + payload + b"\r\n--XX--\r\n"
    )


def big() -> bytes:
    """21 MiB that start and end like a JPEG; built per test, not held by the parameter list."""
    return b"\xff\xd8\xff" + bytes(21 * MiB - 5) + b"\xff\xd9"


BLANK_PNG = png(np.full((480, 640), 255, np.uint8))
GOOD_JPEG = photo_jpeg(7)
GOOD_PNG = png(np.full((64, 64, 3), 128, np.uint8))
NOISE = np.random.default_rng(1).bytes(4096)
JPEG = {"Content-Type": "image/jpeg"}
PNG = {"Content-Type": "image/png"}
UPLOAD = "/sessions/{sid}/items/{scratch}/images"
MULTIPART_XX = {"Content-Type": "multipart/form-data; boundary=XX"}


# fmt: off
SCAN_IMAGE_CASES = [
    p("blank-png", "POST", "/scan", 422, "qr_decode_failed", setup="none",
      files={"file": ("blank.png", BLANK_PNG, "image/png")}),
    p("photo-without-code", "POST", "/scan", 422, "qr_decode_failed", setup="none",
      content=photo_jpeg(3), headers=JPEG),
    p("random-bytes", "POST", "/scan", 400, "image_invalid", setup="none", content=NOISE,
      headers={"Content-Type": "application/octet-stream"}),
    p("empty-body", "POST", "/scan", 400, "image_invalid", setup="none", content=b"",
      headers=PNG),
    p("empty-file", "POST", "/scan", 400, "image_invalid", setup="none",
      files={"file": ("label.png", b"", "image/png")}),
    p("no-file-field", "POST", "/scan", 400, "invalid_input", setup="none",
      files={"photo": ("label.png", BLANK_PNG, "image/png")}),
    p("decompression-bomb", "POST", "/scan", 400, "image_invalid", setup="none",
      files={"file": ("label.png", huge_png(), "image/png")}),
    p("code-with-malformed-payload", "POST", "/scan", 400, "qr_payload_invalid", setup="none",
      files={"file": ("label.png", qr_png("BRK-100_A12-3456"), "image/png")}),
    p("code-of-unknown-product", "POST", "/scan", 404, "product_not_found", setup="none",
      files={"file": ("label.png", qr_png(UNKNOWN_PRODUCTS[0]), "image/png")}),
]
# fmt: on


@pytest.mark.parametrize("case", SCAN_IMAGE_CASES)
def test_scan_image(api: Api, case: Case) -> None:
    refused(api, case)


# --- photos of an item ------------------------------------------------------------------------


# fmt: off
BAD_ITEM_PHOTO_CASES = [
    p("empty-raw", "POST", UPLOAD, 400, "image_invalid", content=b"", headers=JPEG),
    p("empty-file", "POST", UPLOAD, 400, "image_invalid",
      files={"file": ("p.jpg", b"", "image/jpeg")}),
    p("truncated-jpeg", "POST", UPLOAD, 400, "image_invalid",
      files={"file": ("p.jpg", GOOD_JPEG[: len(GOOD_JPEG) // 2], "image/jpeg")}),
    p("truncated-jpeg-raw", "POST", UPLOAD, 400, "image_invalid", content=GOOD_JPEG[:-100],
      headers=JPEG),
    p("truncated-png", "POST", UPLOAD, 400, "image_invalid",
      files={"file": ("p.png", GOOD_PNG[:-30], "image/png")}),
    p("png-without-pixels", "POST", UPLOAD, 400, "image_invalid",
      files={"file": ("p.png", GOOD_PNG[:33] + GOOD_PNG[-12:], "image/png")}),
    p("random-bytes", "POST", UPLOAD, 400, "image_invalid",
      files={"file": ("p.jpg", NOISE, "image/jpeg")}),
    p("jpeg-magic-then-noise", "POST", UPLOAD, 400, "image_invalid",
      content=b"\xff\xd8\xff" + NOISE + b"\xff\xd9", headers=JPEG),
    p("text-file", "POST", UPLOAD, 400, "image_invalid",
      files={"file": ("notes.txt", b"inspection notes\nall fine\n", "text/plain")}),
    p("text-starting-like-bmp", "POST", UPLOAD, 400, "image_invalid",
      files={"file": ("notes.txt", b"BMW brake parts list\n" * 20, "text/plain")}),
    p("decompression-bomb", "POST", UPLOAD, 400, "image_invalid", content=huge_png(),
      headers=PNG),
    p("21MiB-raw", "POST", UPLOAD, 413, "payload_too_large", content=big, headers=JPEG),
    p("21MiB-raw-plus-one", "POST", UPLOAD, 413, "payload_too_large",
      content=lambda: big() + b"\x00", headers=JPEG),
    p("21MiB-file", "POST", UPLOAD, 413, "payload_too_large",
      files=lambda: {"file": ("p.jpg", big(), "image/jpeg")}),
    p("22MiB-raw-chunked", "POST", UPLOAD, 413, "payload_too_large",
      content=lambda: chunked(big() + bytes(MiB)), headers=JPEG),
    p("22MiB-file-chunked", "POST", UPLOAD, 413, "payload_too_large",
      content=lambda: chunked(multipart(big() + bytes(MiB))), headers=MULTIPART_XX),
    p("multipart-without-file-field", "POST", UPLOAD, 400, "invalid_input",
      files={"photo": ("p.jpg", GOOD_JPEG, "image/jpeg")}),
    p("file-field-is-text", "POST", UPLOAD, 400, "invalid_input",
      data={"file": "not a photo"}, files={"note": ("n.txt", b"x", "text/plain")}),
    p("urlencoded-form", "POST", UPLOAD, 400, "image_invalid", data={"file": "not a photo"}),
    p("multipart-without-boundary", "POST", UPLOAD, 400, "invalid_input",
      content=multipart(GOOD_JPEG), headers={"Content-Type": "multipart/form-data"}),
    p("unknown-item", "POST", "/sessions/{sid}/items/item-nope/images", 404, "not_found",
      files={"file": ("p.jpg", GOOD_JPEG, "image/jpeg")}),
    p("unknown-session", "POST", "/sessions/nope/items/{scratch}/images", 404, "not_found",
      files={"file": ("p.jpg", GOOD_JPEG, "image/jpeg")}),
    p("completed-session", "POST", UPLOAD, 409, "illegal_transition", setup="completed",
      files={"file": ("p.jpg", GOOD_JPEG, "image/jpeg")}, says=("completed",)),
    p("completed-session-raw", "POST", UPLOAD, 409, "illegal_transition", setup="completed",
      content=GOOD_JPEG, headers=JPEG, says=("completed",)),
]
# fmt: on


@pytest.mark.parametrize("case", BAD_ITEM_PHOTO_CASES)
def test_bad_item_photo(api: Api, case: Case) -> None:
    refused(api, case)


def test_a_photo_is_refused_before_its_file_is_written(api: Api) -> None:
    # Verified directly: a photo can no longer change the item, so its bytes must not be stored.
    start(api)
    verify(api, "scratch")
    case = Case("POST", UPLOAD, 409, "illegal_transition", setup="none", content=GOOD_JPEG,
                headers=JPEG, says=("V-SCRATCH", "verified"))  # fmt: skip
    refused(api, case)
    assert api.state().files == ()


# --- illegal transitions ----------------------------------------------------------------------

ITEM = "/sessions/{sid}/items/"
DONE: dict[str, Any] = {"setup": "completed", "says": ("completed",)}


# fmt: off
ILLEGAL_TRANSITION_CASES = [
    p("complete-with-open-items", "POST", "/sessions/{sid}/complete", 409, "items_open",
      says=("V-SCRATCH", "V-FOREIGN", "T-MARKING", "D-BORE", "F-PISTON")),
    p("skip-required-item", "POST", ITEM + "{scratch}/skip", 409, "item_required",
      says=("V-SCRATCH", "required")),
    p("retry-pending-item", "POST", ITEM + "{piston}/retry", 409, "illegal_transition",
      says=("F-PISTON",)),
    p("verify-after-complete", "POST", ITEM + "{scratch}/verification", 409,
      "illegal_transition", json=VERIFY_OK, **DONE),
    p("skip-after-complete", "POST", ITEM + "{piston}/skip", 409, "illegal_transition", **DONE),
    p("retry-after-complete", "POST", ITEM + "{piston}/retry", 409, "illegal_transition",
      **DONE),
    p("complete-twice", "POST", "/sessions/{sid}/complete", 409, "illegal_transition", **DONE),
    p("discard-completed", "POST", "/sessions/{sid}/discard", 409, "illegal_transition",
      **DONE),
    p("cancel-completed", "POST", "/sessions/{sid}/cancel", 409, "illegal_transition", **DONE),
    p("restart-completed", "POST", "/sessions/{sid}/restart", 409, "illegal_transition",
      **DONE),
    p("resume-completed", "POST", "/sessions/{sid}/resume", 409, "illegal_transition", **DONE),
]
# fmt: on


@pytest.mark.parametrize("case", ILLEGAL_TRANSITION_CASES)
def test_illegal_transition(api: Api, case: Case) -> None:
    error = refused(api, case)
    assert error["detail"]["state"]


def test_a_product_without_items_is_not_started(api: Api) -> None:
    # PMP-220 is in the masters but has no inspection items on this tablet.
    qr = '{"product_id": "PMP-220", "batch_id": "B-1"}'
    case = Case("POST", "/sessions", 409, "no_items", json={"qr_code": qr}, setup="none")
    assert "PMP-220" in refused(api, case)["message"]


def test_complete_names_exactly_the_open_items(api: Api) -> None:
    start(api)
    verify(api, "scratch")
    verify(api, "bore")
    case = Case("POST", "/sessions/{sid}/complete", 409, "items_open", setup="none")
    error = refused(api, case)
    assert error["detail"]["items"] == ["V-FOREIGN", "T-MARKING", "F-PISTON"]
    assert "V-SCRATCH" not in error["message"] and "D-BORE" not in error["message"]


def test_discarded_session_takes_no_more_changes(api: Api) -> None:
    start(api)
    signed = {"signature": {"password": PASSWORD, "meaning": "discarded"}}
    assert api.post("/sessions/{sid}/discard", json=signed).status_code == 200
    gone: dict[str, Any] = {"setup": "none", "says": ("cancelled",)}
    path = ITEM + "{scratch}/verification"
    refused(api, Case("POST", path, 409, "illegal_transition", json=VERIFY_OK, **gone))
    photo = Case("POST", UPLOAD, 409, "illegal_transition", content=GOOD_JPEG, headers=JPEG,
                 **gone)  # fmt: skip
    refused(api, photo)


# --- verdicts ---------------------------------------------------------------------------------

VERIFY = ITEM + "{bore}/verification"


# fmt: off
BAD_VERDICT_CASES = [
    p("ng-bare", "POST", VERIFY, 400, "invalid_input", json={"final_result": "NG"}),
    p("ng-without-severity", "POST", VERIFY, 400, "invalid_input",
      json={"final_result": "NG", "defect_types": ["bore_oversize"]}),
    p("ng-without-defect-types", "POST", VERIFY, 400, "invalid_input",
      json={"final_result": "NG", "severity": "major"}),
    p("ng-empty-defect-types", "POST", VERIFY, 400, "invalid_input",
      json={"final_result": "NG", "defect_types": [], "severity": "major"}),
    p("ng-blank-defect-type", "POST", VERIFY, 400, "invalid_input",
      json={"final_result": "NG", "defect_types": ["  "], "severity": "major"}),
    p("ok-with-blank-defect-type", "POST", VERIFY, 400, "invalid_input",
      json={**VERIFY_OK, "defect_types": ["burr", ""]}),
    p("unknown-severity", "POST", VERIFY, 422, "validation_error",
      json={"final_result": "NG", "defect_types": ["x"], "severity": "fatal"}),
    p("unknown-ai-result", "POST", VERIFY, 400, "invalid_input",
      json={**VERIFY_OK, "ai_result_id": NO_RECORD}),
    p("ai-result-id-not-an-id", "POST", VERIFY, 422, "validation_error",
      json={**VERIFY_OK, "ai_result_id": "nope"}),
]
# fmt: on


@pytest.mark.parametrize("case", BAD_VERDICT_CASES)
def test_bad_verdict(api: Api, case: Case) -> None:
    error = refused(api, case)
    if case.status == 400:
        assert error["detail"]["field"] in ("defect_types", "severity", "ai_result_id")


# --- SQL in every text field ------------------------------------------------------------------

TABLES = {
    "users",
    "inspection_targets",
    "inspection_sessions",
    "inspection_session_items",
    "inspection_images",
    "ai_inspection_results",
    "human_verification_results",
    "outbox",
    "system_config",
    "inspection_targets_master",
    "inspection_items_master",
}


def assert_intact(api: Api, before: State) -> None:
    after = api.state()
    assert set(after.counts) >= TABLES, "a table is gone"
    for table in ("users", "inspection_targets_master", "inspection_items_master"):
        assert after.counts[table] == before.counts[table], table
    with api.db() as conn:
        names = {row[0] for row in conn.execute("SELECT username FROM users")}
    assert names == {"tanaka", "admin"}


@pytest.mark.parametrize("text", SQL)
@pytest.mark.parametrize("who", ["username", "password"])
def test_sql_at_login(api: Api, text: str, who: str) -> None:
    body = {"username": "tanaka", "password": PASSWORD, who: text}
    refused(api, Case("POST", "/auth/login", 401, "bad_credentials", json=body, setup="none"))
    assert_intact(api, api.state())


@pytest.mark.parametrize("text", SQL)
def test_sql_in_notes_is_stored_verbatim_and_refused_as_a_defect_type(api: Api, text: str) -> None:
    start(api)
    before = api.state()
    body = {"final_result": "NG", "notes": text, "defect_types": [text, "other"],
            "severity": "minor", "verification_time": 3}
    # A defect type is a code the item offers, not text: refused, and nothing written.
    refused(api, Case("POST", "/sessions/{sid}/items/{bore}/verification", 400, "invalid_input",
                      json=body, setup="none", says=("offers no defect type",)))
    body["defect_types"] = ["bore_oversize", "other"]
    made = verify(api, "bore", body)
    assert made["notes"] == text and made["defect_types"] == ["bore_oversize", "other"]
    with api.db() as conn:
        notes, defects = conn.execute(
            "SELECT notes, defect_types FROM human_verification_results"
        ).fetchone()
        (data,) = conn.execute(
            "SELECT data FROM outbox WHERE entity_type = 'human_verification_result'"
        ).fetchone()
    assert notes == text and json.loads(defects) == ["bore_oversize", "other"]
    assert json.loads(data)["notes"] == text
    assert_intact(api, before)
    shown = api.get("/sessions/{sid}").json()["items"][3]["verifications"][0]
    assert shown["notes"] == text


FILTERS = [
    ("/history", "inspector"),
    ("/history", "product"),
    ("/history", "batch"),
    ("/history", "status"),
    ("/stats", "product"),
]


@pytest.mark.parametrize("text", SQL)
def test_sql_in_filters_matches_nothing(api: Api, text: str) -> None:
    complete(api)
    before = api.state()
    for path, param in FILTERS:
        r = api.get(path, params={param: text})
        if param == "inspector":
            # An inspector may name only themself: any other name is refused before a query.
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "not_your_inspections"
            continue
        assert r.status_code == 200, (param, r.text)
        if path == "/history":
            assert r.json()["total"] == 0 and r.json()["rows"] == [], param
        else:
            assert r.json()["buckets"] == [], param
    # Nothing changed; the refusal is on the audit trail (one entry and its outbox row).
    after = api.state()
    assert after.counts["audit_log"] == before.counts["audit_log"] + 1
    assert after.counts["outbox"] == before.counts["outbox"] + 1
    assert {**after.counts, "audit_log": 0, "outbox": 0} == {
        **before.counts,
        "audit_log": 0,
        "outbox": 0,
    }
    assert after.files == before.files
    assert_intact(api, before)
    assert api.get("/history").json()["total"] == 1


@pytest.mark.parametrize("text", SQL)
def test_sql_in_enumerated_filter_and_ids_is_refused(api: Api, text: str) -> None:
    start(api)
    none: dict[str, Any] = {"setup": "none"}
    refused(api, Case("GET", "/history", 422, "validation_error", params={"result": text}, **none))
    # No record id holds quotes, spaces or semicolons: such a path is not an id at all.
    refused(api, Case("POST", f"/sessions/{text}/complete", 422, "validation_error", **none))
    refused(api, Case("POST", ITEM + f"{text}/skip", 422, "validation_error", **none))
    refused(api, Case("GET", f"/images/{text}", 422, "validation_error", **none))


# --- malformed JSON bodies --------------------------------------------------------------------

BIG_JSON = json.dumps({"qr_code": QR_JSON, "pad": "x" * (MiB + 10)}).encode()
JSON_TYPE = {"Content-Type": "application/json"}
NESTED = b'{"qr_code": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


# fmt: off
MALFORMED_BODY_CASES = [
    p("json-over-1MB", "POST", "/sessions", 413, "payload_too_large", content=BIG_JSON,
      headers=JSON_TYPE),
    p("json-over-1MB-chunked", "POST", "/sessions", 413, "payload_too_large",
      content=lambda: chunked(BIG_JSON), headers=JSON_TYPE),
    p("notes-over-1MB", "POST", VERIFY, 413, "payload_too_large",
      json={**VERIFY_OK, "notes": "n" * (MiB + 1)}),
    p("scan-text-over-1MB", "POST", "/scan/text", 413, "payload_too_large",
      json={"text": "x" * (MiB + 1)}),
    p("not-json", "POST", "/sessions", 422, "validation_error", content=b"qr_code=BRK-100",
      headers=JSON_TYPE),
    p("json-cut-short", "POST", "/sessions", 422, "validation_error",
      content=b'{"qr_code": "BRK', headers=JSON_TYPE),
    p("empty-body", "POST", "/sessions", 422, "validation_error", content=b"",
      headers=JSON_TYPE),
    p("array-body", "POST", "/sessions", 422, "validation_error", json=[QR_JSON]),
    p("string-body", "POST", "/sessions", 422, "validation_error", json=QR_JSON),
    p("deeply-nested", "POST", "/sessions", 400, None, content=NESTED, headers=JSON_TYPE),
]
# fmt: on


@pytest.mark.parametrize("case", MALFORMED_BODY_CASES)
def test_malformed_body(api: Api, case: Case) -> None:
    refused(api, case)


# fmt: off
UNKNOWN_FIELD_CASES = [
    p("login", "POST", "/auth/login", 422, "validation_error", setup="none",
      json={"username": "tanaka", "password": PASSWORD, "role": "admin"}, says=("role",)),
    p("start", "POST", "/sessions", 422, "validation_error",
      json={"qr_code": QR_JSON, "user_id": 2}, says=("user_id",)),
    p("scan-text", "POST", "/scan/text", 422, "validation_error",
      json={"text": QR_JSON, "format": "json"}, says=("format",)),
    p("verification", "POST", VERIFY, 422, "validation_error",
      json={**VERIFY_OK, "overrode_ai": False}, says=("overrode_ai",)),
]
# fmt: on


@pytest.mark.parametrize("case", UNKNOWN_FIELD_CASES)
def test_unknown_field(api: Api, case: Case) -> None:
    error = refused(api, case)
    assert any(case.says[0] in f["field"] for f in error["detail"])


# fmt: off
WRONG_TYPE_CASES = [
    p("qr-code-number", "POST", "/sessions", 422, "validation_error", json={"qr_code": 123}),
    p("qr-code-null", "POST", "/sessions", 422, "validation_error", json={"qr_code": None}),
    p("qr-code-missing", "POST", "/sessions", 422, "validation_error", json={}),
    p("username-null", "POST", "/auth/login", 422, "validation_error", setup="none",
      json={"username": None, "password": PASSWORD}),
    p("password-list", "POST", "/auth/login", 422, "validation_error", setup="none",
      json={"username": "tanaka", "password": [PASSWORD]}),
    p("final-result-unknown", "POST", VERIFY, 422, "validation_error",
      json={"final_result": "MAYBE", "verification_time": 1}),
    p("final-result-number", "POST", VERIFY, 422, "validation_error",
      json={"final_result": 1, "verification_time": 1}),
    p("verification-time-text", "POST", VERIFY, 422, "validation_error",
      json={"final_result": "OK", "verification_time": "fast"}),
    p("verification-time-negative", "POST", VERIFY, 422, "validation_error",
      json={"final_result": "OK", "verification_time": -1}),
    p("defect-types-string", "POST", VERIFY, 422, "validation_error",
      json={"final_result": "NG", "defect_types": "scratch", "severity": "minor"}),
    p("defect-types-numbers", "POST", VERIFY, 422, "validation_error",
      json={"final_result": "NG", "defect_types": [1, 2], "severity": "minor"}),
    p("history-page-text", "GET", "/history?page=first", 422, "validation_error"),
    p("history-page-zero", "GET", "/history?page=0", 422, "validation_error"),
    p("history-date-text", "GET", "/history?started_from=yesterday", 422, "validation_error"),
    p("history-date-before-year-one-utc", "GET",
      "/history?started_from=0001-01-01T00:00:00%2B14:00", 422, "validation_error"),
    p("history-date-after-9999-utc", "GET",
      "/history?started_to=9999-12-31T23:59:59-01:00", 422, "validation_error"),
    p("stats-since-after-9999-utc", "GET",
      "/stats?since=9999-12-31T23:59:59-01:00", 422, "validation_error"),
    p("stats-until-before-year-one-utc", "GET",
      "/stats?until=0001-01-01T00:00:00%2B14:00", 422, "validation_error"),
    p("stats-period-unknown", "GET", "/stats?period=year", 422, "validation_error"),
    p("stats-zone-unknown", "GET", "/stats?tz=Mars/Olympus_Mons", 400, "timezone_unknown"),
    p("stats-zone-path", "GET", "/stats?tz=../../etc/passwd", 422, "validation_error"),
    p("stats-zone-long", "GET", "/stats?tz=" + "A" * 65, 422, "validation_error"),
]
# fmt: on


@pytest.mark.parametrize("case", WRONG_TYPE_CASES)
def test_wrong_type(api: Api, case: Case) -> None:
    refused(api, case)


# --- unknown ids ------------------------------------------------------------------------------


# fmt: off
UNKNOWN_ID_CASES = [
    p("get-session", "GET", "/sessions/nope", 404, "not_found"),
    p("complete-session", "POST", "/sessions/nope/complete", 404, "not_found"),
    p("resume-session", "POST", "/sessions/nope/resume", 404, "not_found"),
    p("restart-session", "POST", "/sessions/nope/restart", 404, "not_found"),
    p("discard-session", "POST", "/sessions/nope/discard", 404, "not_found"),
    p("skip-item-of-unknown-session", "POST", "/sessions/nope/items/{scratch}/skip", 404,
      "not_found"),
    p("skip-unknown-item", "POST", ITEM + "nope/skip", 404, "not_found"),
    p("retry-unknown-item", "POST", ITEM + "nope/retry", 404, "not_found"),
    p("verify-unknown-item", "POST", ITEM + "nope/verification", 404, "not_found",
      json=VERIFY_OK),
    # AI results come from the job runner only: there is no route to post one.
    p("ai-result-post", "POST", ITEM + "{scratch}/ai-results", 404, "not_found",
      json={"overall_result": "OK", "confidence": 0.9, "processing_time": 0.2}),
    p("image", "GET", "/images/nope", 404, "not_found"),
    p("thumbnail", "GET", "/images/nope/thumbnail", 404, "not_found"),
    p("unknown-route", "GET", ITEM.rstrip("/"), 404, "not_found"),
]
# fmt: on


@pytest.mark.parametrize("case", UNKNOWN_ID_CASES)
def test_unknown_id(api: Api, case: Case) -> None:
    refused(api, case)

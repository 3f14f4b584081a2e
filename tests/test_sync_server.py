"""The sync server as a process on PostgreSQL, fed bad input: wrong or absent credentials, another
device's id, malformed and oversized batches, bodies that do not match their hash, replays — each
a clear 4xx, and nothing stored twice."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa

from schema.db import create_engine

if TYPE_CHECKING:
    from tests.support.sync_fixtures import Running

pytestmark = pytest.mark.postgres
pytest_plugins = ("tests.support.sync_fixtures",)


def op(seq: int, *, entity_type: str = "inspection_target", operation: str = "INSERT",
       data: dict[str, Any] | None = None, entity_id: str | None = None) -> dict[str, Any]:
    key = entity_id or str(uuid.uuid4())
    payload = data if data is not None else {
        "id": key, "product_id": "BRK-100", "batch_id": "A12-3456", "qr_code": "{}"}
    return {"seq": seq, "op_id": str(uuid.uuid4()), "entity_type": entity_type,
            "entity_id": key, "operation": operation, "data": payload}


def batch(device_id: str, ops: list[dict[str, Any]], device_type: str = "tablet") -> dict[
    str, Any
]:
    return {"device_id": device_id, "device_type": device_type, "app_version": "0.1.0",
            "ops": ops}


def queue_rows(pg_url: str) -> int:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM tauri_sync_queue")).scalar_one())
    finally:
        engine.dispose()


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def test_credentials_are_required_and_checked(site_server: Running) -> None:
    url = site_server.url
    me = site_server.site.device_ids["TAB-01"]
    body = batch(me, [op(1)])
    assert httpx.post(f"{url}/sync/v1/push", json=body).status_code == 401
    device_token = site_server.site.tokens["TAB-01"]
    # ... and the device token itself is not an access token.
    for bad in ("Bearer nonsense", "Bearer a.b.c", f"Basic {device_token}",
                f"Bearer {device_token}"):
        answer = httpx.post(f"{url}/sync/v1/push", json=body, headers={"Authorization": bad})
        assert answer.status_code == 401, bad
    assert httpx.post(f"{url}/sync/v1/auth",
                      headers={"Authorization": "Bearer kd_guess"}).status_code == 401
    # A forged token (right shape, wrong signature) for a real device.
    forged = f"{uuid.UUID(me).hex}.9999999999.{base64.urlsafe_b64encode(b'x' * 32).decode()}"
    answer = httpx.post(f"{url}/sync/v1/push", json=body,
                        headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401
    assert queue_rows(site_server.site.database_url) == 0


def test_a_device_cannot_push_as_another(site_server: Running) -> None:
    other = site_server.site.device_ids["TAB-02"]
    with site_server.client("TAB-01") as client:
        answer = client.post("/sync/v1/push", json=batch(other, [op(1)]))
        assert answer.status_code == 403 and error_code(answer) == "forbidden"
        mine = site_server.site.device_ids["TAB-01"]
        answer = client.post("/sync/v1/push", json=batch(mine, [op(1)], device_type="mobile"))
        assert answer.status_code == 403
        sneaky = {**op(1), "device_id": other}
        answer = client.post("/sync/v1/push", json=batch(mine, [sneaky]))
        assert answer.status_code == 403
    assert queue_rows(site_server.site.database_url) == 0


MALFORMED = [
    ("not json", 400, "invalid_request"),
    ("empty object", 400, "invalid_request"),
    ("no ops", 400, "invalid_request"),
    ("EMPTY", 400, "invalid_request"),
    ("DUPLICATE_SEQ", 400, "invalid_request"),
    ("UNKNOWN_ENTITY", 422, "operation_rejected"),
    ("BAD_UUID", 422, "operation_rejected"),
    ("UPDATE_WITHOUT_BASE", 422, "operation_rejected"),
    ("ID_MISMATCH", 422, "operation_rejected"),
    ("NEGATIVE_SEQ", 422, "operation_rejected"),
]


def test_malformed_batches_are_refused_whole(site_server: Running) -> None:
    me = site_server.site.device_ids["TAB-01"]
    good = op(1)
    cases: dict[str, list[dict[str, Any]]] = {
        "EMPTY": [],
        "DUPLICATE_SEQ": [good, op(1)],
        "UNKNOWN_ENTITY": [good, op(2, entity_type="bank_account")],
        "BAD_UUID": [good, {**op(2), "entity_id": "not-a-uuid"}],
        "UPDATE_WITHOUT_BASE": [good, op(2, operation="UPDATE", data={"status": "x"})],
        "ID_MISMATCH": [good, op(2, data={"id": str(uuid.uuid4())})],
        "NEGATIVE_SEQ": [good, {**op(2), "seq": -4}],
    }
    raw = {"not json": b"not json", "empty object": b"{}",
           "no ops": json.dumps({"device_id": me}).encode()}
    with site_server.client() as client:
        for name, status, code in MALFORMED:
            content = raw.get(name) or json.dumps(batch(me, cases[name])).encode()
            answer = client.post("/sync/v1/push", content=content,
                                 headers={"Content-Type": "application/json"})
            assert answer.status_code == status, (name, answer.text)
            assert error_code(answer) == code, name
            if code == "operation_rejected":
                # The refusal names the bad operation (by op_id, which the device matches on).
                rejected = answer.json()["error"]["detail"]["rejected"]
                assert [r["op_id"] for r in rejected] == [cases[name][1]["op_id"]], name
    assert queue_rows(site_server.site.database_url) == 0


def test_oversized_batches_are_refused(site_server: Running) -> None:
    me = site_server.site.device_ids["TAB-01"]
    with site_server.client() as client:
        too_many = batch(me, [op(i) for i in range(1, 5002)])
        answer = client.post("/sync/v1/push", json=too_many)
        assert answer.status_code == 413 and error_code(answer) == "payload_too_large"
        huge = batch(me, [op(1, data={"id": None, "blob": "x" * (17 * 1024 * 1024)})])
        answer = client.post("/sync/v1/push", json=huge)
        assert answer.status_code == 413
    assert queue_rows(site_server.site.database_url) == 0


def test_replayed_batches_store_nothing_twice(site_server: Running) -> None:
    me = site_server.site.device_ids["TAB-01"]
    ops = [op(i) for i in range(1, 6)]
    with site_server.client() as client:
        first = client.post("/sync/v1/push", json=batch(me, ops))
        assert first.status_code == 200 and first.json()["stored"] == 5
        assert first.json()["applied_through_seq"] == 5
        again = client.post("/sync/v1/push", json=batch(me, ops))
        assert again.status_code == 200
        assert again.json() == {**first.json(), "stored": 0, "duplicates": 5}
        overlap = client.post("/sync/v1/push", json=batch(me, [*ops[3:], op(6)]))
        assert overlap.json()["stored"] == 1 and overlap.json()["duplicates"] == 2
        # The same sequence number with a different operation id is not a replay: refused.
        clash = client.post("/sync/v1/push", json=batch(me, [op(2)]))
        assert clash.status_code == 422 and error_code(clash) == "operation_rejected"
    assert queue_rows(site_server.site.database_url) == 6


def test_uploads_are_checked_against_their_hash(site_server: Running) -> None:
    body = b"\xff\xd8\xff" + bytes(range(256)) * 400
    sha = hashlib.sha256(body).hexdigest()
    with site_server.client() as client:
        assert client.post("/sync/v1/files/missing",
                           json={"sha256": [sha]}).json() == {"missing": [sha]}
        wrong = client.put(f"/sync/v1/files/{sha}", content=body + b"!")
        assert wrong.status_code == 422 and error_code(wrong) == "hash_mismatch"
        assert client.put("/sync/v1/files/not-a-hash", content=body).status_code == 400
        # A hash and a newline names no file: nothing is staged under that name.
        assert client.put(f"/sync/v1/files/{sha}%0A", content=body).status_code == 400
        assert client.post("/sync/v1/files/missing",
                           json={"sha256": [sha + "\n"]}).status_code in (400, 422)
        assert client.put(f"/sync/v1/files/{'0' * 64}", content=b"").status_code == 400
        stored = client.put(f"/sync/v1/files/{sha}", content=body,
                            headers={"Content-Type": "image/jpeg"})
        assert stored.status_code == 201 and stored.json() == {
            "sha256": sha, "size": len(body), "created": True}
        again = client.put(f"/sync/v1/files/{sha}", content=body)
        assert again.status_code == 200 and again.json()["created"] is False
        assert client.post("/sync/v1/files/missing", json={"sha256": [sha]}).json() == {
            "missing": []}
        # Its own image, readable back; another device cannot read it.
        assert client.get(f"/sync/v1/files/{sha}").content == body
    with site_server.client("TAB-02") as other:
        assert other.get(f"/sync/v1/files/{sha}").status_code == 404
        model = site_server.site.model_sha
        assert model is not None
        fetched = other.get(f"/sync/v1/files/{model}")
        assert hashlib.sha256(fetched.content).hexdigest() == model
    stored_body = (site_server.files / sha[:2] / sha).read_bytes()
    assert stored_body == body
    assert not list((site_server.server.data_dir / "staging").glob("*.part"))


def test_pull_cursors_are_checked(site_server: Running) -> None:
    with site_server.client() as client:
        page = client.get("/sync/v1/changes", params={"limit": 2})
        assert page.status_code == 200
        assert page.json()["has_more"] is True and len(page.json()["changes"]) >= 2
        assert client.get("/sync/v1/changes", params={"cursor": "junk"}).status_code == 400
        foreign = client.get("/sync/v1/changes", params={"cursor": "otherepoch:5"})
        assert foreign.status_code == 410 and error_code(foreign) == "cursor_expired"


def test_admin_api_needs_an_admin_and_bumps_the_sequence(site_server: Running) -> None:
    url = f"{site_server.url}/admin/v1"
    target = {"product_code": "GRB-330", "product_name": "ギアボックス", "version": "1"}
    assert httpx.post(f"{url}/targets", json=target).status_code == 401
    # A non-admin's right password is refused like a wrong one: nothing tells them apart.
    assert httpx.post(f"{url}/targets", json=target,
                      auth=("tanaka", "tanaka-pass")).status_code == 401
    assert httpx.post(f"{url}/targets", json=target,
                      auth=("admin", "wrong")).status_code == 401
    with site_server.client() as device:
        before = device.get("/sync/v1/changes").json()["cursor"]
    created = httpx.post(f"{url}/targets", json=target, auth=("admin", "admin-pass"))
    assert created.status_code == 201
    item = {"item_code": "V-LEAK", "item_name": "漏れ", "inspection_type": "VISUAL",
            "order_sequence": 1,
            "criteria": {"judgment_type": "BINARY", "measurement": "leak", "expected": False}}
    assert httpx.post(f"{url}/targets/GRB-330/items", json=item,
                      auth=("admin", "admin-pass")).status_code == 201
    bad = {**item, "item_code": "V-X", "criteria": {"judgment_type": "GUESS"}}
    assert httpx.post(f"{url}/targets/GRB-330/items", json=bad,
                      auth=("admin", "admin-pass")).status_code == 422
    duplicate = httpx.post(f"{url}/targets", json=target, auth=("admin", "admin-pass"))
    assert duplicate.status_code == 409
    with site_server.client() as device:
        changes = device.get("/sync/v1/changes", params={"cursor": before}).json()["changes"]
    assert [(c["entity_type"], c["op"]) for c in changes] == [("target", "UPSERT"),
                                                              ("item", "UPSERT")]
    assert changes[1]["data"]["criteria"]["measurement"] == "leak"

"""The sync server's edges as a process on PostgreSQL: every text, number and JSON document a
device or an admin sends is held to what its column stores (422, nothing stored; the boundary value
itself accepted), rotating or revoking a device token ends its access tokens at once, the admin
API checks role and state on every request, answers every refusal alike and throttles failures,
and the API documents are served only when the settings ask."""

from __future__ import annotations

import base64
import hashlib
import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from schema.db import create_engine
from sync.bounds import INT32_MAX, INT64_MAX, MAX_DATA_BYTES, MAX_JSON_DEPTH
from sync.server.body_limit import MAX_JSON_BODY
from sync.server.cli import server_app as cli_app
from tests.support.postgres import Cluster
from tests.support.sync_harness import ServerProcess, seed_site

if TYPE_CHECKING:
    from tests.support.sync_fixtures import Running

pytestmark = pytest.mark.postgres

ADMIN = ("admin", "admin-pass")


@pytest.fixture(scope="module")
def edge_site(pg_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One seeded site for the module: the refused cases store nothing, the accepted ones use
    their own sequence numbers, devices and users. Admin failures are not throttled here."""
    # Imported here, not at the top: another module loads it as a pytest plugin.
    from tests.support.sync_fixtures import running_site

    with running_site(pg_cluster, tmp_path_factory.mktemp("edges")) as site:
        yield site


def scalar(url: str, sql: str) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar_one()
    finally:
        engine.dispose()


def fingerprint(url: str) -> tuple[Any, ...]:
    """Everything an admin or a device could have changed."""
    return tuple(scalar(url, sql) for sql in (
        "SELECT count(*) FROM tauri_sync_queue",
        "SELECT coalesce(max(seq), 0) FROM change_log",
        "SELECT count(*) FROM users",
        "SELECT count(*) FROM devices",
        "SELECT count(*) FROM pipelines",
        "SELECT string_agg(version || product_name || coalesce(description, ''), ',' "
        "ORDER BY product_code) FROM inspection_targets_master",
        "SELECT string_agg(coalesce(email, '') || coalesce(full_name, ''), ',' "
        "ORDER BY username) FROM users",
        "SELECT sum(last_applied_seq) FROM devices",
    ))


_seqs = itertools.count(1)


def op(seq: int | None = None, **changes: Any) -> dict[str, Any]:
    key = str(uuid.uuid4())
    base = {"seq": seq or next(_seqs), "op_id": str(uuid.uuid4()),
            "entity_type": "inspection_target", "entity_id": key, "operation": "INSERT",
            "data": {"id": key, "product_id": "BRK-100", "batch_id": "A12-3456",
                     "qr_code": "{}"}}
    return {**base, **changes}


def with_data(**extra: Any) -> dict[str, Any]:
    made = op()
    made["data"] = {**made["data"], **extra}
    return made


def entity(entity_type: str, **data: Any) -> dict[str, Any]:
    """An INSERT of ``entity_type`` whose data is ``data``."""
    return op(entity_type=entity_type, data=data)


def nested(levels: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": "x"}
    for _ in range(levels - 1):
        doc = {"k": doc}
    return doc


def batch(device_id: str, ops: list[dict[str, Any]], **envelope: Any) -> dict[str, Any]:
    return {"device_id": device_id, "device_type": "tablet", "app_version": "0.1.0",
            "ops": ops, **envelope}


# An operation a device must set aside: refused alone, by its op_id.
REFUSED_OPS = [
    ("seq 2^63", op(seq=2**63)),
    ("seq 2^64", op(seq=2**64)),
    ("priority 2^31", op(priority=2**31)),
    ("priority 2^63", op(priority=2**63)),
    ("priority below int", op(priority=-(2**31) - 1)),
    ("retry_count 2^40", op(retry_count=2**40)),
    ("app_version 51", op(app_version="1" * 51)),
    ("app_version NUL", op(app_version="0.1\x00")),
    ("app_version ESC", op(app_version="0.1\x1b[2J")),
    ("entity_type NUL", op(entity_type="inspection_target\x00")),
    ("NUL in data", with_data(serial="SN\x00")),
    ("NUL deep in data", with_data(extra={"a": [{"b": "ok"}, "x\x00"]})),
    ("NUL in a data key", with_data(**{"ke\x00y": 1})),
    ("data too deep", with_data(extra=nested(MAX_JSON_DEPTH))),
    ("data too large", with_data(blob="x" * MAX_DATA_BYTES)),
    ("number out of range in data", with_data(width=2**64)),
    # data keys that name a column of the entity's table are held to that column
    ("image width 2^31", entity("inspection_image", session_id=str(uuid.uuid4()),
                                sha256="a" * 64, width=2**31)),
    ("image size 2^63", entity("inspection_image", session_id=str(uuid.uuid4()),
                               sha256="a" * 64, file_size=2**63)),
    ("image sha256 65", entity("inspection_image", session_id=str(uuid.uuid4()),
                               sha256="a" * 65)),
    ("session status 51", entity("inspection_session", target_id=str(uuid.uuid4()),
                                 status="s" * 51)),
    ("session product code 101", entity("inspection_session", target_id=str(uuid.uuid4()),
                                        status="in_progress", product_code="P" * 101)),
    ("item order 2^31", entity("inspection_session_item", session_id=str(uuid.uuid4()),
                               item_code="V-1", order_sequence=2**31, status="pending")),
    ("target product 101", with_data(product_id="P" * 101)),
    ("verification notes NUL", entity("human_verification_result",
                                      session_id=str(uuid.uuid4()), final_result="OK",
                                      notes="fine\x00")),
]


@pytest.mark.parametrize(("name", "bad"), REFUSED_OPS, ids=[n for n, _ in REFUSED_OPS])
def test_an_operation_over_its_bounds_is_refused_alone(
    edge_site: Running, name: str, bad: dict[str, Any]
) -> None:
    url = edge_site.site.database_url
    me = edge_site.site.device_ids["TAB-01"]
    before = fingerprint(url)
    with edge_site.client("TAB-01") as client:
        answer = client.post("/sync/v1/push", json=batch(me, [op(), bad]))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "operation_rejected"
    rejected = error["detail"]["rejected"]
    assert [r["op_id"] for r in rejected] == [bad["op_id"]]
    assert rejected[0]["seq"] == bad["seq"] and rejected[0]["reason"]
    assert fingerprint(url) == before


REFUSED_BATCHES = [
    ("app_version 51", {"app_version": "1" * 51}),
    ("app_version 300", {"app_version": "1" * 300}),
    ("app_version NUL", {"app_version": "0.1.0\x00"}),
    ("app_version CR", {"app_version": "0.1.0\r"}),
    ("device_id NUL", {"device_id": "TAB-01\x00"}),
    ("device_id 256", {"device_id": "d" * 256}),
]


@pytest.mark.parametrize(("name", "envelope"), REFUSED_BATCHES,
                         ids=[n for n, _ in REFUSED_BATCHES])
def test_a_batch_envelope_over_its_bounds_is_refused(
    edge_site: Running, name: str, envelope: dict[str, Any]
) -> None:
    url = edge_site.site.database_url
    me = edge_site.site.device_ids["TAB-01"]
    before = fingerprint(url)
    with edge_site.client("TAB-01") as client:
        answer = client.post("/sync/v1/push", json={**batch(me, [op()]), **envelope})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert fingerprint(url) == before


ACCEPTED_OPS = [
    ("seq 2^63-1", op(seq=INT64_MAX)),
    ("priority 2^31-1", op(priority=INT32_MAX)),
    ("priority -2^31", op(priority=-(2**31))),
    ("retry_count 2^31-1", op(retry_count=INT32_MAX)),
    ("app_version 50", op(app_version="1" * 50)),
    ("tab, newline and CR in data", with_data(notes="a\tb\nc\r\nd")),
    ("data 32 deep", with_data(extra=nested(MAX_JSON_DEPTH - 1))),
    ("data just under the size", with_data(blob="x" * (MAX_DATA_BYTES - 500))),
    ("image width 2^31-1", entity("inspection_image", session_id=str(uuid.uuid4()),
                                  sha256="a" * 64, width=INT32_MAX)),
    # A status is held to the move table's states, far shorter than its column.
    ("session product code 100", entity("inspection_session", target_id=str(uuid.uuid4()),
                                        status="in_progress", product_code="P" * 100)),
    # A scanned GS1 code carries group separators: not a NUL, so stored as scanned.
    ("GS in a scanned code", with_data(qr_code="(01)0456\x1d(10)A12")),
]


@pytest.mark.parametrize(("name", "good"), ACCEPTED_OPS, ids=[n for n, _ in ACCEPTED_OPS])
def test_the_boundary_values_themselves_are_stored(
    edge_site: Running, name: str, good: dict[str, Any]
) -> None:
    me = edge_site.site.device_ids["TAB-02"]
    with edge_site.client("TAB-02") as client:
        answer = client.post("/sync/v1/push", json=batch(me, [good], app_version="9" * 50))
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 1
    stored = scalar(edge_site.site.database_url,
                    f"SELECT seq FROM tauri_sync_queue WHERE op_id = '{good['op_id']}'")
    assert stored == good["seq"]


@pytest.mark.parametrize(("after", "status"), [(INT64_MAX, 200), (INT64_MAX + 1, 422),
                                               (2**70, 422), (-1, 422)])
def test_the_conflicts_cursor_is_bounded(edge_site: Running, after: int, status: int) -> None:
    with edge_site.client("TAB-01") as client:
        answer = client.get("/sync/v1/conflicts", params={"after": after})
    assert answer.status_code == status, answer.text


# --- the admin API's bodies and paths --------------------------------------------------------

ITEM: dict[str, Any] = {"item_code": "V-NEW", "item_name": "新規", "inspection_type": "VISUAL",
        "order_sequence": 9,
        "criteria": {"judgment_type": "BINARY", "measurement": "m", "expected": True}}
TARGET = {"product_code": "NEW-1", "product_name": "新製品", "version": "1"}
USER = {"username": "newbie", "password": "newbie-pass"}
PIPELINE = {"id": "edge-pipeline", "name": "edge", "version": 1,
            "steps": [{"name": "roi", "type": "crop", "params": {"w": 8, "h": 8},
                       "image": "$inputs.image"}],
            "outputs": {"box": "$steps.roi.box"}}

REFUSED_ADMIN = [
    ("code 101", "POST", "/targets", {**TARGET, "product_code": "C" * 101}, 422),
    ("version 300", "POST", "/targets", {**TARGET, "version": "1" * 300}, 422),
    ("name NUL", "POST", "/targets", {**TARGET, "product_name": "名\x00"}, 422),
    ("code ESC", "POST", "/targets", {**TARGET, "product_code": "NEW\x1b[31m"}, 422),
    ("description NUL", "POST", "/targets", {**TARGET, "description": "a\x00b"}, 422),
    ("description 10001", "POST", "/targets", {**TARGET, "description": "d" * 10_001}, 422),
    ("patch version 51", "PATCH", "/targets/BRK-100", {"version": "v" * 51}, 422),
    ("patch empty name", "PATCH", "/targets/BRK-100", {"product_name": ""}, 422),
    ("path NUL", "PATCH", "/targets/BRK%00100", {"version": "4"}, 422),
    ("path ESC", "DELETE", "/targets/BRK%1B100", None, 422),
    ("path 300", "PATCH", "/targets/" + "B" * 300, {"version": "4"}, 422),
    ("order 2^31", "POST", "/targets/BRK-100/items", {**ITEM, "order_sequence": 2**31}, 422),
    ("order 2^63", "POST", "/targets/BRK-100/items", {**ITEM, "order_sequence": 2**63}, 422),
    ("item code 101", "POST", "/targets/BRK-100/items", {**ITEM, "item_code": "I" * 101}, 422),
    ("criteria NUL", "POST", "/targets/BRK-100/items",
     {**ITEM, "criteria": {**ITEM["criteria"], "note": ["x\x00"]}}, 422),
    ("criteria too deep", "POST", "/targets/BRK-100/items",
     {**ITEM, "criteria": {**ITEM["criteria"], "x": nested(MAX_JSON_DEPTH)}}, 422),
    ("patch order 2^31", "PATCH", "/targets/BRK-100/items/V-SCRATCH",
     {"order_sequence": 2**31}, 422),
    ("item path NUL", "PATCH", "/targets/BRK-100/items/V%00X", {"item_name": "x"}, 422),
    ("pipeline name NUL", "PUT", "/pipelines", {"definition": {**PIPELINE, "name": "e\x00"}},
     422),
    ("pipeline name 256", "PUT", "/pipelines", {"definition": {**PIPELINE, "name": "e" * 256}},
     400),
    ("pipeline version 2^31", "PUT", "/pipelines",
     {"definition": {**PIPELINE, "version": 2**31}}, 400),
    ("pipeline too large", "PUT", "/pipelines",
     {"definition": {**PIPELINE, "blob": "x" * (1024 * 1024)}}, 422),
    ("email 1000", "POST", "/users", {**USER, "email": "e" * 990 + "@example.jp"}, 422),
    ("username NUL", "POST", "/users", {**USER, "username": "new\x00bie"}, 422),
    ("username 151", "POST", "/users", {**USER, "username": "u" * 151}, 422),
    ("full name CR", "POST", "/users", {**USER, "full_name": "新\r人"}, 422),
    ("password 2000", "POST", "/users", {**USER, "password": "p" * 2000}, 422),
    ("patch email 256", "PATCH", "/users/tanaka", {"email": "e" * 256}, 422),
    ("patch role 21", "PATCH", "/users/tanaka", {"role": "r" * 21}, 422),
    ("user path NUL", "DELETE", "/users/tan%00aka", None, 422),
    ("device name NUL", "POST", "/devices", {"name": "TAB\x00"}, 422),
    ("device name 256", "POST", "/devices", {"name": "T" * 256}, 422),
    ("device type", "POST", "/devices", {"name": "TAB-99", "device_type": "phone"}, 422),
    ("device path NUL", "POST", "/devices/TAB-01%00/token", None, 422),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "status"), REFUSED_ADMIN,
                         ids=[case[0] for case in REFUSED_ADMIN])
def test_an_admin_value_over_its_bounds_is_refused(
    edge_site: Running, name: str, method: str, path: str, body: dict[str, Any] | None,
    status: int,
) -> None:
    url = edge_site.site.database_url
    before = fingerprint(url)
    answer = httpx.request(method, f"{edge_site.url}/admin/v1{path}", json=body, auth=ADMIN)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert fingerprint(url) == before


ACCEPTED_ADMIN = [
    ("target at its limits", "POST", "/targets",
     {"product_code": "C" * 100, "product_name": "名" * 255, "version": "1" * 50,
      "description": "line one\r\nline\ttwo"}),
    ("user at its limits", "POST", "/users",
     {"username": "u" * 150, "password": "p" * 1024, "full_name": "氏" * 255,
      "email": "e" * 243 + "@example.jp"}),
    ("order 2^31-1", "POST", "/targets/PMP-220/items", {**ITEM, "order_sequence": INT32_MAX}),
    ("pipeline version 2^31-1", "PUT", "/pipelines",
     {"definition": {**PIPELINE, "version": INT32_MAX}}),
]


@pytest.mark.parametrize(("name", "method", "path", "body"), ACCEPTED_ADMIN,
                         ids=[case[0] for case in ACCEPTED_ADMIN])
def test_admin_values_at_their_bounds_are_stored(
    edge_site: Running, name: str, method: str, path: str, body: dict[str, Any]
) -> None:
    answer = httpx.request(method, f"{edge_site.url}/admin/v1{path}", json=body, auth=ADMIN)
    assert answer.status_code in (200, 201), answer.text


runner = CliRunner()

REFUSED_CLI = [
    ("email 1000", ["user", "add", "newbie", "--password", "newbie-pass",
                    "--email", "e" * 990 + "@example.jp"]),
    ("username NUL", ["user", "add", "new\x00bie", "--password", "newbie-pass"]),
    ("password 2000", ["user", "add", "newbie", "--password", "p" * 2000]),
    ("code 101", ["target", "add", "C" * 101, "製品"]),
    ("version 300", ["target", "add", "NEW-2", "製品", "--version", "1" * 300]),
    ("order 2^31", ["item", "add", "BRK-100", "V-NEW", "新規", "--type", "VISUAL",
                    "--order", str(2**31), "--criteria",
                    '{"judgment_type": "BINARY", "measurement": "m"}']),
    ("device name ESC", ["device", "add", "TAB\x1b[1m"]),
    ("device ref NUL", ["device", "token", "TAB-01\x00"]),
    ("user ref 300", ["user", "update", "u" * 300, "--full-name", "x"]),
]


@pytest.mark.parametrize(("name", "args"), REFUSED_CLI, ids=[n for n, _ in REFUSED_CLI])
def test_the_cli_holds_values_to_the_same_bounds(
    edge_site: Running, name: str, args: list[str]
) -> None:
    url = edge_site.site.database_url
    before = fingerprint(url)
    result = runner.invoke(cli_app, [*args, "--database-url", url])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    assert fingerprint(url) == before


# --- device tokens: rotation and revocation end access tokens --------------------------------


def _rotate_cli(site: Running, name: str) -> str | None:
    result = runner.invoke(cli_app, ["device", "token", name, "--database-url",
                                     site.site.database_url])
    assert result.exit_code == 0, result.output
    return result.output.split("token:")[1].split()[0]


def _revoke_cli(site: Running, name: str) -> str | None:
    result = runner.invoke(cli_app, ["device", "revoke", name, "--database-url",
                                     site.site.database_url])
    assert result.exit_code == 0, result.output
    return None


def _rotate_api(site: Running, name: str) -> str | None:
    answer = httpx.post(f"{site.url}/admin/v1/devices/{name}/token", auth=ADMIN)
    assert answer.status_code == 200, answer.text
    assert "token_hash" not in answer.json()
    token: str = answer.json()["token"]
    return token


def _revoke_api(site: Running, name: str) -> str | None:
    answer = httpx.post(f"{site.url}/admin/v1/devices/{name}/revoke", auth=ADMIN)
    assert answer.status_code == 204, answer.text
    return None


ENDINGS = {"cli token": _rotate_cli, "cli revoke": _revoke_cli,
           "admin token": _rotate_api, "admin revoke": _revoke_api}


def _access(site: Running, device_token: str) -> httpx.Response:
    return httpx.post(f"{site.url}/sync/v1/auth",
                      headers={"Authorization": f"Bearer {device_token}"})


@pytest.mark.parametrize("how", list(ENDINGS))
def test_rotating_or_revoking_a_device_token_ends_its_access_tokens(
    edge_site: Running, how: str
) -> None:
    name = f"ROT-{how.replace(' ', '-')}"
    added = httpx.post(f"{edge_site.url}/admin/v1/devices", json={"name": name}, auth=ADMIN)
    assert added.status_code == 201, added.text
    device_id, old_token = added.json()["id"], added.json()["token"]
    access = _access(edge_site, old_token).json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    first = httpx.post(f"{edge_site.url}/sync/v1/push", json=batch(device_id, [op(1)]),
                       headers=bearer)
    assert first.status_code == 200, first.text

    new_token = ENDINGS[how](edge_site, name)

    # The very next request with the access token of the old device token is refused...
    for answer in (
        httpx.post(f"{edge_site.url}/sync/v1/push", json=batch(device_id, [op(2)]),
                   headers=bearer),
        httpx.get(f"{edge_site.url}/sync/v1/changes", headers=bearer),
        httpx.get(f"{edge_site.url}/sync/v1/conflicts", headers=bearer),
    ):
        assert answer.status_code == 401, answer.text
    # ... so is the old device token ...
    assert _access(edge_site, old_token).status_code == 401
    assert scalar(edge_site.site.database_url,
                  f"SELECT count(*) FROM tauri_sync_queue WHERE device_id = '{device_id}'") == 1
    if new_token is None:
        return
    # ... and the new one works, with access tokens of its own.
    fresh = _access(edge_site, new_token)
    assert fresh.status_code == 200
    again = httpx.post(f"{edge_site.url}/sync/v1/push", json=batch(device_id, [op(2)]),
                       headers={"Authorization": f"Bearer {fresh.json()['access_token']}"})
    assert again.status_code == 200, again.text


# --- admin credentials -----------------------------------------------------------------------


def _admin_get(site: Running, auth: tuple[str, str]) -> httpx.Response:
    return httpx.get(f"{site.url}/admin/v1/devices", auth=auth)


def test_admin_refusals_are_indistinguishable(edge_site: Running) -> None:
    httpx.post(f"{edge_site.url}/admin/v1/users", auth=ADMIN,
               json={"username": "retired", "password": "retired-pass", "role": "admin"})
    httpx.patch(f"{edge_site.url}/admin/v1/users/retired", auth=ADMIN,
                json={"is_active": False})
    answers = {
        "unknown user": _admin_get(edge_site, ("nobody", "whatever")),
        "wrong password": _admin_get(edge_site, ("admin", "wrong-pass")),
        "not an admin": _admin_get(edge_site, ("tanaka", "tanaka-pass")),
        "deactivated admin": _admin_get(edge_site, ("retired", "retired-pass")),
        "no credentials": httpx.get(f"{edge_site.url}/admin/v1/devices"),
    }
    statuses = {name: a.status_code for name, a in answers.items()}
    assert set(statuses.values()) == {401}, statuses
    bodies = {a.text for name, a in answers.items() if name != "no credentials"}
    assert len(bodies) == 1, bodies
    assert _admin_get(edge_site, ADMIN).status_code == 200


CHANGES = [
    ("demoted", "PATCH", {"role": "inspector"}),
    ("deactivated", "PATCH", {"is_active": False}),
    ("deleted", "DELETE", None),
    ("new password", "PATCH", {"password": "another-pass"}),
]


@pytest.mark.parametrize(("name", "method", "body"), CHANGES, ids=[c[0] for c in CHANGES])
def test_an_admin_change_takes_effect_on_the_next_request(
    edge_site: Running, name: str, method: str, body: dict[str, Any] | None
) -> None:
    username = f"chief-{name.replace(' ', '-')}"
    chief = (username, "chief-pass")
    created = httpx.post(f"{edge_site.url}/admin/v1/users", auth=ADMIN,
                         json={"username": username, "password": "chief-pass", "role": "admin"})
    assert created.status_code == 201, created.text
    # Twice: the second one is answered from the verification cache.
    assert _admin_get(edge_site, chief).status_code == 200
    assert _admin_get(edge_site, chief).status_code == 200
    changed = httpx.request(method, f"{edge_site.url}/admin/v1/users/{username}", json=body,
                            auth=ADMIN)
    assert changed.status_code in (200, 204), changed.text
    assert _admin_get(edge_site, chief).status_code == 401


def _server(tmp_path: Path, database_url: str, **env: str) -> ServerProcess:
    return ServerProcess(database_url, tmp_path / "server", storage=(tmp_path / "f").as_uri(),
                         extra_env=env)


def test_failed_admin_logins_are_throttled(pg_url: str, tmp_path: Path) -> None:
    site = seed_site(pg_url, (tmp_path / "f").as_uri())
    # A slow refill, so the test's own pace (argon2 on a busy machine) refills nothing; the
    # refill itself is table-tested with a clock in tests/test_sync_bounds.py.
    env = {"KENSA_SERVER_ADMIN_LOGIN_BURST": "3", "KENSA_SERVER_ADMIN_LOGIN_REFILL_S": "120"}
    with _server(tmp_path, pg_url, **env) as server:
        url = f"{server.url}/admin/v1/devices"
        assert httpx.get(url, auth=ADMIN).status_code == 200
        for _ in range(3):
            assert httpx.get(url, auth=("admin", "guess")).status_code == 401
        # Then every attempt is refused before its password is looked at: the right one, and
        # another user's from the same address.
        for auth in (("admin", "guess"), ADMIN, ("suzuki", "guess")):
            limited = httpx.get(url, auth=auth)
            assert limited.status_code == 429, (auth, limited.text)
            assert limited.json()["error"]["code"] == "rate_limited"
            assert 100 <= int(limited.headers["Retry-After"]) <= 120
        # Devices are not admins: their API is not affected.
        with httpx.Client(base_url=server.url) as device:
            token = device.post("/sync/v1/auth", headers={
                "Authorization": f"Bearer {site.tokens['TAB-01']}"}).json()["access_token"]
            assert device.get("/sync/v1/changes", headers={
                "Authorization": f"Bearer {token}"}).status_code == 200


# --- the API documents -----------------------------------------------------------------------

DOCS = ("/docs", "/redoc", "/openapi.json")


@pytest.mark.parametrize(("env", "served"), [({}, False), ({"KENSA_SERVER_API_DOCS": "1"}, True)],
                         ids=["default", "asked for"])
def test_api_documents_are_served_only_when_asked(
    tmp_path: Path, env: dict[str, str], served: bool
) -> None:
    # The embedded server (SQLite): the setting does not depend on the database.
    with ServerProcess("", tmp_path / "server", extra_env=env) as server:
        for path in DOCS:
            answer = httpx.get(f"{server.url}{path}")
            assert answer.status_code == (200 if served else 404), path
        if served:
            assert "/sync/v1/push" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
        assert httpx.get(f"{server.url}/health").status_code == 200


@pytest.mark.parametrize(("args", "expected"), [([], False), (["--api-docs"], True),
                                                (["--no-api-docs"], False)])
def test_the_run_command_takes_the_docs_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], expected: bool
) -> None:
    from sync.server import run

    seen: list[Any] = []
    monkeypatch.delenv("KENSA_SERVER_API_DOCS", raising=False)
    monkeypatch.setattr(run, "serve", seen.append)
    result = runner.invoke(cli_app, ["run", "--data-dir", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    assert [settings.api_docs for settings in seen] == [expected]


def test_basic_credentials_that_are_not_base64_are_refused(edge_site: Running) -> None:
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
                   "Bearer " + hashlib.sha256(b"x").hexdigest()):
        answer = httpx.get(f"{edge_site.url}/admin/v1/devices",
                           headers={"Authorization": header})
        assert answer.status_code == 401, header


@pytest.mark.parametrize(("file_name", "status"), [("n" * 501, 400), ("n" * 5000, 400),
                                                   ("n" * 495 + ".onnx", 201)])
def test_a_model_file_name_is_held_to_its_column(
    edge_site: Running, file_name: str, status: int
) -> None:
    body = uuid.uuid4().bytes * 64
    sha = hashlib.sha256(body).hexdigest()
    before = fingerprint(edge_site.site.database_url)
    answer = httpx.put(f"{edge_site.url}/admin/v1/models/{sha}", content=body,
                       headers={"X-Kensa-File-Name": file_name}, auth=ADMIN)
    assert answer.status_code == status, answer.text
    stored = scalar(edge_site.site.database_url,
                    f"SELECT count(*) FROM files WHERE checksum = '{sha}'")
    assert stored == (1 if status == 201 else 0)
    if status != 201:
        assert answer.json()["error"]["code"] == "invalid_request"
        assert fingerprint(edge_site.site.database_url) == before


def _chunks(size: int, chunk: int = 256 * 1024) -> Iterator[bytes]:
    # A body sent without a length: the server learns its size only by reading it.
    sent = 0
    yield b'{"code": "'
    while sent < size:
        yield b"A" * chunk
        sent += chunk
    yield b'"}'


@pytest.mark.parametrize("declared", [True, False], ids=["with a length", "chunked"])
def test_a_body_past_the_json_limit_is_refused_before_it_is_read_whole(
    edge_site: Running, declared: bool
) -> None:
    # /enroll takes no token: before, any client could make the server read and parse a body
    # of any size before the code's 40 characters were checked.
    size = MAX_JSON_BODY + 1
    url = f"{edge_site.url}/sync/v1/enroll"
    if declared:
        answer = httpx.post(url, content=b'{"code": "' + b"A" * size + b'"}',
                            headers={"Content-Type": "application/json"})
    else:
        answer = httpx.post(url, content=_chunks(size),
                            headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "payload_too_large"
    # An admin body too, after its login.
    answer = httpx.post(f"{edge_site.url}/admin/v1/users", content=b"[" + b"1," * size + b"1]",
                        headers={"Content-Type": "application/json"}, auth=ADMIN)
    assert answer.status_code == 413, answer.text


def test_bodies_under_the_json_limit_and_streamed_files_are_not_held_to_it(
    edge_site: Running,
) -> None:
    # A wrong enrollment code just under the limit is read and refused as a code.
    answer = httpx.post(f"{edge_site.url}/sync/v1/enroll",
                        content=b'{"code": "' + b"A" * (MAX_JSON_BODY - 100) + b'"}',
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    # A model file past the JSON limit streams to its own limit and is stored.
    body = uuid.uuid4().bytes * (MAX_JSON_BODY // 16 + 1)
    sha = hashlib.sha256(body).hexdigest()
    stored = httpx.put(f"{edge_site.url}/admin/v1/models/{sha}", content=body, auth=ADMIN,
                       headers={"X-Kensa-File-Name": "big.onnx"})
    assert stored.status_code == 201, stored.text

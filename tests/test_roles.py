"""Roles: the matrix (every role x action), every route classified, and probes of every route as
every role through the real sidecar process, which answer exactly as the matrix says.

The probes are data-driven from the route table (``sidecar.api.permissions.ROUTES``): each route
has a way to make a request that succeeds for a role allowed to make it (``PROBES``), and a
test fails when a route has no table entry or no probe. A role without the action is a 403
``forbidden_role`` naming it; one allowed on its own inspections only gets another's as missing
(404) when it may not even read it, else 403; every other answer is the route's success.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlmodel import select
from typer.testing import CliRunner, Result

from schema import device as d
from schema import migrate
from schema import server as s
from schema.db import Database, create_engine, create_sqlite_engine
from schema.formats import roles as shared_roles
from schema.types import new_id, utcnow
from scripts.devkit import synthetic
from sidecar.api import permissions
from sidecar.api.permissions import LAUNCH, PUBLIC, ROUTES
from sidecar.app import create_app
from sidecar.cli import app as cli
from sidecar.domain import access, lockout
from sidecar.domain.access import ANY, OWN, Action, Scope
from sidecar.jobs import queue
from sidecar.qr.payload import parse_payload
from sidecar.services import auth, inspection
from sidecar.settings import Settings
from sync.device import config
from sync.device.service import SyncService
from sync.server import masters
from tests.support.seed import PASSWORD, QR_JSON, item_id, photo_jpeg, qr_png, seed_device
from tests.support.sidecar import SidecarProcess
from tests.support.sync_harness import wait_until

if TYPE_CHECKING:
    from tests.support.sync_fixtures import Running

pytest_plugins = ("tests.support.sync_fixtures",)

# --- the matrix -------------------------------------------------------------------------------

NO = None
# fmt: off
# Every role x every action: how far it may go (OWN: its own inspections; ANY: anyone's / the
# tablet; NO: not at all). "viewer" (the seed system's) and "" are roles this version does not
# know: nothing.
_ROWS: dict[str, list[Scope | None]] = {
    #              read work discard override inspect set_aside users connect calibrate
    "inspector":  [OWN, OWN, OWN,   NO,      ANY,    NO,       NO,   NO,     NO],
    "supervisor": [ANY, OWN, ANY,   ANY,     ANY,    ANY,      ANY,  NO,     ANY],
    "admin":      [ANY, OWN, ANY,   NO,      ANY,    ANY,      ANY,  ANY,    NO],
    "viewer":     [NO,  NO,  NO,    NO,      NO,     NO,       NO,   NO,     NO],
    "":           [NO,  NO,  NO,    NO,      NO,     NO,       NO,   NO,     NO],
    "Admin":      [NO,  NO,  NO,    NO,      NO,     NO,       NO,   NO,     NO],
}
# fmt: on
EXPECTED = {role: dict(zip(Action, row, strict=True)) for role, row in _ROWS.items()}
CELLS = [(role, action) for role in EXPECTED for action in Action]


def test_the_matrix_lists_the_actions_in_order() -> None:
    # The columns above are zipped against the enum: a new action must get a column.
    assert [a.value for a in Action] == [
        "read", "work", "discard", "override", "inspect", "set_aside", "users", "connect",
        "calibrate",
    ]  # fmt: skip


@pytest.mark.parametrize("role,action", CELLS, ids=[f"{r or 'none'}-{a}" for r, a in CELLS])
def test_every_role_and_action(role: str, action: Action) -> None:
    scope = EXPECTED[role][action]
    assert access.grant(role, action) is scope
    assert access.may_do(role, action) is (scope is not None)
    me, other = 7, 8
    assert access.may(role, me, me, action) is (scope is not None)
    assert access.may(role, me, other, action) is (scope is ANY)
    assert access.may(role, me, None, action) is (scope is ANY)
    assert access.may(role, None, None, action) is False
    assert access.permissions(role).get(action) is scope


def test_device_actions_are_never_granted_on_own_rows_only() -> None:
    for grants in access.MATRIX.values():
        for action, scope in grants.items():
            assert action not in access.DEVICE_ACTIONS or scope is ANY


@pytest.mark.parametrize("role,everyone", [
    ("inspector", False), ("supervisor", True), ("admin", True), ("viewer", False), ("", False),
])  # fmt: skip
def test_whose_rows_lists_show(role: str, everyone: bool) -> None:
    assert access.sees_everyones(role) is everyone


def test_the_roles_are_the_ones_both_databases_store() -> None:
    assert access.ROLES == shared_roles.ROLES == tuple(r for r in EXPECTED if r in access.ROLES)
    assert shared_roles.role_check() == "role IN ('inspector', 'supervisor', 'admin')"


# --- every route classified -------------------------------------------------------------------


@pytest.fixture
def app_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    monkeypatch.setenv("KENSA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KENSA_CONFIG_DIR", str(tmp_path / "config"))
    app = create_app(Settings(token="t"))
    documented = permissions.documented_routes(app)
    assert len(documented) == sum(len(item) for item in app.openapi()["paths"].values())
    return documented


def test_every_route_in_the_document_has_a_permission_entry(
    app_routes: list[tuple[str, str]],
) -> None:
    missing = [f"{m} {p}" for m, p in app_routes if (m, p) not in ROUTES]
    assert missing == [], f"add these to sidecar.api.permissions.ROUTES: {missing}"


def test_every_permission_entry_is_a_route(app_routes: list[tuple[str, str]]) -> None:
    stale = [f"{m} {p}" for m, p in ROUTES if (m, p) not in app_routes]
    assert stale == [], f"no such routes, remove them from ROUTES: {stale}"


def test_every_route_has_a_probe() -> None:
    missing = [f"{m} {p}" for m, p in ROUTES if (m, p) not in PROBES]
    assert missing == [], f"add a request that succeeds to PROBES for: {missing}"


def test_a_route_without_an_entry_is_refused_to_everyone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    monkeypatch.setenv("KENSA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KENSA_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "data").mkdir()
    migrate.upgrade_device(tmp_path / "data" / "kensa.db")
    app = create_app(Settings(token="t", sync_enabled=False, ai_workers=0))

    @app.get("/unclassified")
    def unclassified() -> dict[str, str]:
        return {"reached": "yes"}

    assert ("GET", "/unclassified") in permissions.unclassified(app)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        r = client.get("/unclassified", headers={"Authorization": "Bearer t"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_role"


# --- probes through the real sidecar ---------------------------------------------------------

# Who logs in, as which role. Another's records belong to sato, an inspector.
USERS = {"tanaka": "inspector", "suzuki": "supervisor", "admin": "admin", "sato": "inspector"}
PROBERS = ["tanaka", "suzuki", "admin"]
OWNER = "sato"
SIGNED = {"json": {"signature": {"password": PASSWORD, "meaning": "discarded"}}}
VERIFY_OK = {"final_result": "OK", "verification_time": 1.0}


@dataclass
class Tablet:
    proc: SidecarProcess
    logins: dict[str, dict[str, str]] = field(default_factory=dict)

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self.logins[who] if who else {}
        with self.proc.client(**headers) as client:
            return client.request(method, path, **kwargs)

    def ok(self, who: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        r = self.call(who, method, path, **kwargs)
        assert r.status_code in (200, 201, 202), r.text
        body: dict[str, Any] = r.json()
        return body

    def login(self, who: str) -> None:
        r = self.call(None, "POST", "/auth/login", json={"username": who, "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.logins[who] = {"X-Kensa-Session": r.json()["token"]}

    # Records of ``owner``'s, made through the API.
    def inspection(self, owner: str) -> str:
        return str(self.ok(owner, "POST", "/sessions", json={"qr_code": QR_JSON})["id"])

    def photo(self, owner: str, sid: str, code: str = "V-SCRATCH") -> str:
        path = f"/sessions/{sid}/items/{item_id(code)}/images"
        body = self.ok(
            owner, "POST", path, content=photo_jpeg(), headers={"Content-Type": "image/jpeg"}
        )
        return str(body["id"])

    def job(self, owner: str) -> str:
        """A waiting AI job of ``owner``'s, as the queue writes one (no AI workers run here)."""
        sid = self.inspection(owner)
        image = self.photo(owner, sid)
        db = Database(create_sqlite_engine(self.proc.data_dir / "kensa.db"))
        try:
            with db.atomic() as session:
                row = session.get(d.InspectionSession, sid)
                assert row is not None
                job, _ = queue.enqueue(
                    session, image_id=image, session_id=sid, item_id=item_id("V-SCRATCH"),
                    pipeline_id="brk100-v-scratch", pipeline_version=1, priority="normal",
                    user_id=row.user_id,
                )  # fmt: skip
                return job.id
        finally:
            db.dispose()

    def all_verified(self, owner: str) -> str:
        sid = self.inspection(owner)
        for item in self.ok(owner, "GET", f"/sessions/{sid}")["items"]:
            path = f"/sessions/{sid}/items/{item['item_id']}/verification"
            self.ok(owner, "POST", path, json=VERIFY_OK)
        return sid

    def completed(self, owner: str) -> str:
        sid = self.all_verified(owner)
        self.ok(owner, "POST", f"/sessions/{sid}/complete")
        return sid


@dataclass
class Probe:
    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    ok: int = 200  # the route's answer when the caller may


Prepare = Callable[[Tablet, str], Probe]


def _item(code: str, what: str) -> Prepare:
    def prepare(t: Tablet, owner: str) -> Probe:
        sid = t.inspection(owner)
        return Probe(f"/sessions/{sid}/items/{item_id(code)}/{what}")

    return prepare


def _skipped_then_retry(t: Tablet, owner: str) -> Probe:
    sid = t.inspection(owner)
    t.ok(owner, "POST", f"/sessions/{sid}/items/{item_id('F-PISTON')}/skip")
    return Probe(f"/sessions/{sid}/items/{item_id('F-PISTON')}/retry")


def _image(suffix: str) -> Prepare:
    def prepare(t: Tablet, owner: str) -> Probe:
        sid = t.inspection(owner)
        return Probe(f"/images/{t.photo(owner, sid)}{suffix}")

    return prepare


def _session(suffix: str, ok: int = 200, kwargs: dict[str, Any] | None = None) -> Prepare:
    def prepare(t: Tablet, owner: str) -> Probe:
        return Probe(f"/sessions/{t.inspection(owner)}{suffix}", dict(kwargs or {}), ok)

    return prepare


def _fixed(path: str, ok: int = 200, **kwargs: Any) -> Prepare:
    return lambda t, owner: Probe(path, dict(kwargs), ok)


def _conflict(t: Tablet, owner: str) -> Probe:
    """A version conflict the server reported on one of ``owner``'s inspections."""
    sid, op_id = t.inspection(owner), str(uuid.uuid4())
    with sqlite3.connect(t.proc.data_dir / "kensa.db") as conn:
        (version,) = conn.execute(
            "SELECT version FROM inspection_sessions WHERE id = ?", (sid,)
        ).fetchone()
        server = f'{{"status": "identified", "result": "NG", "version": {version + 1}}}'
        conn.execute(
            "INSERT INTO sync_refusals (op_id, seq, entity_type, entity_id, operation, kind, "
            "reason_code, reason, data, server_data) VALUES (?, 1, 'inspection_session', ?, "
            "'UPDATE', 'conflict', 'version_conflict', 'server holds another version', '{}', ?)",
            (op_id, sid, server),
        )
    return Probe(f"/sync/refusals/{op_id}/resolve", {"json": {"keep": "server"}})


def _set_aside(t: Tablet, owner: str) -> Probe:
    """An operation the tablet set aside (the server never stored it)."""
    with sqlite3.connect(t.proc.data_dir / "kensa.db") as conn:
        seq = conn.execute(
            "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, "
            "created_at, set_aside_at, set_aside_reason) VALUES (?, 'inspection_target', ?, "
            "'INSERT', '{}', 0, '2026-12-03 08:00:00', '2026-12-03 08:01:00', "
            "'invalid_request: refused')",
            (str(uuid.uuid4()), str(uuid.uuid4())),
        ).lastrowid
    return Probe(f"/sync/set-aside/{seq}/retry", {}, 204)


_S = "/sessions/{session_id}"
_I = _S + "/items/{item_id}"
# fmt: off
PROBES: dict[tuple[str, str], Prepare] = {
    ("GET",  "/health"):                  _fixed("/health"),
    ("POST", "/auth/login"):              lambda t, who: Probe(
        "/auth/login", {"json": {"username": who, "password": PASSWORD}}),
    ("POST", "/auth/logout"):             _fixed("/auth/logout", 204),
    ("GET",  "/auth/me"):                 _fixed("/auth/me"),
    ("POST", "/users/{username}/unlock"): _fixed("/users/sato/unlock"),
    ("POST", "/scan"):                    _fixed(
        "/scan", content=qr_png(), headers={"Content-Type": "image/png"}),
    ("POST", "/scan/text"):               _fixed("/scan/text", json={"text": QR_JSON}),
    ("GET",  "/masters/targets"):         _fixed("/masters/targets"),
    ("POST", "/sessions"):                _fixed("/sessions", 201, json={"qr_code": QR_JSON}),
    ("GET",  "/sessions/interrupted"):    _fixed("/sessions/interrupted"),
    ("GET",  _S):                         _session(""),
    ("POST", _I + "/images"):             lambda t, owner: Probe(
        f"/sessions/{t.inspection(owner)}/items/{item_id('V-SCRATCH')}/images",
        {"content": photo_jpeg(3), "headers": {"Content-Type": "image/jpeg"}}, 201),
    ("POST", _I + "/verification"):       lambda t, owner: Probe(
        f"/sessions/{t.inspection(owner)}/items/{item_id('F-PISTON')}/verification",
        {"json": VERIFY_OK}, 201),
    ("POST", _I + "/rejudge"):            lambda t, owner: Probe(
        f"/sessions/{t.completed(owner)}/items/{item_id('F-PISTON')}/rejudge",
        {"json": VERIFY_OK}, 201),
    ("POST", _I + "/skip"):               _item("F-PISTON", "skip"),
    ("POST", _I + "/retry"):              _skipped_then_retry,
    # No AI workers run on this tablet: the route itself answers that (409 ai_disabled).
    ("POST", _I + "/analyse"):            lambda t, owner: Probe(
        f"/sessions/{t.inspection(owner)}/items/{item_id('V-SCRATCH')}/analyse",
        {"json": {}}, 409),
    ("POST", _S + "/complete"):           lambda t, owner: Probe(
        f"/sessions/{t.all_verified(owner)}/complete"),
    ("POST", _S + "/resume"):             _session("/resume"),
    ("POST", _S + "/restart"):            _session("/restart", 201, SIGNED),
    ("POST", _S + "/discard"):            _session("/discard", 200, SIGNED),
    ("POST", _S + "/cancel"):             _session("/cancel", 200, SIGNED),
    ("GET",  "/images/{image_id}"):       _image(""),
    ("GET",  "/images/{image_id}/thumbnail"): _image("/thumbnail"),
    ("GET",  "/history"):                 _fixed("/history"),
    ("GET",  _S + "/audit"):              _session("/audit"),
    ("GET",  "/stats"):                   _fixed("/stats"),
    ("GET",  "/jobs"):                    _fixed("/jobs"),
    ("GET",  "/jobs/{job_id}"):           lambda t, owner: Probe(f"/jobs/{t.job(owner)}"),
    ("POST", "/jobs/{job_id}/cancel"):    lambda t, owner: Probe(f"/jobs/{t.job(owner)}/cancel"),
    ("GET",  "/events"):                  _fixed("/events"),
    ("POST", "/events/ticket"):           _fixed("/events/ticket"),
    ("GET",  "/sync/status"):             _fixed("/sync/status"),
    ("POST", "/sync/now"):                _fixed("/sync/now"),
    # Nothing listens there: the route ran and could not reach the server (502).
    ("POST", "/sync/connect"):            _fixed(
        "/sync/connect", 502, json={"server_url": "http://127.0.0.1:9", "token": "t" * 32}),
    ("GET",  "/sync/refusals"):           _fixed("/sync/refusals"),
    ("POST", "/sync/refusals/{op_id}/resolve"): _conflict,
    ("POST", "/sync/set-aside/{seq}/retry"): _set_aside,
    ("GET",  "/calibrations"):            _fixed("/calibrations"),
    ("POST", "/calibrations"):            _fixed(
        "/calibrations?method=checkerboard&size_mm=5&columns=7&rows=5", 201,
        content=synthetic.encode(synthetic.make_checkerboard(5.0, 1)),
        headers={"Content-Type": "image/png"}),
    # This tablet has its users: the first-run routes say so and refuse (409 setup_done).
    ("GET",  "/setup"):                   _fixed("/setup"),
    ("POST", "/setup/connect"):           _fixed(
        "/setup/connect", 409, json={"server_url": "http://127.0.0.1:9", "code": "AAAAA-BBBBB"}),
    ("POST", "/setup/local-admin"):       _fixed(
        "/setup/local-admin", 409, json={"username": "boss", "password": "Werk-Halle-7"}),
}
# fmt: on
OWNED = {"{session_id}", "{image_id}", "{job_id}"}


def _owned(path: str) -> bool:
    return any(p in path for p in OWNED)


CASES = [
    (method, path, who, whose)
    for (method, path) in ROUTES
    for who in PROBERS
    for whose in (["own", "another's"] if _owned(path) else ["-"])
]


@pytest.fixture(scope="module")
def tablet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tablet]:
    data = tmp_path_factory.mktemp("roles")
    seed_device(data / "kensa.db")  # tanaka (inspector) and admin (admin)
    db = Database(create_sqlite_engine(data / "kensa.db"))
    try:
        with db.atomic() as session:
            auth.add_user(session, "suzuki", PASSWORD, role="supervisor")
            auth.add_user(session, "sato", PASSWORD)
    finally:
        db.dispose()
    # Sync runs (nothing is connected, so each tick finds nothing to do); AI does not.
    proc = SidecarProcess(data, env={"KENSA_AI_WORKERS": "0"})
    proc.start()
    t = Tablet(proc)
    try:
        for name in USERS:
            t.login(name)
        yield t
    finally:
        proc.kill()


def _send(t: Tablet, who: str, method: str, probe: Probe) -> httpx.Response:
    if probe.path == "/events":
        with t.proc.client(**t.logins[who]) as client, client.stream("GET", "/events") as r:
            return r
    return t.call(who, method, probe.path, **probe.kwargs)


@pytest.mark.parametrize(
    "method,path,who,whose", CASES, ids=[f"{m} {p} as {w} ({o})" for m, p, w, o in CASES]
)
def test_each_role_gets_what_the_matrix_says(
    tablet: Tablet, method: str, path: str, who: str, whose: str
) -> None:
    needed = ROUTES[(method, path)]
    owner = OWNER if whose == "another's" else who
    probe = PROBES[(method, path)](tablet, owner)
    r = _send(tablet, who, method, probe)
    if path == "/auth/logout" and r.status_code == 204:
        tablet.login(who)  # logging out ends every login of the user
    role = USERS[who]
    # An open route (public, launch token, any login) is as if everyone had it on anything.
    scope = access.grant(role, needed) if isinstance(needed, Action) else ANY
    if scope is None:
        expected = 403
    elif scope is OWN and owner != who:
        # Another's record: missing to whom may not even read it, refused to whom may.
        expected = 403 if access.sees_everyones(role) else 404
    else:
        expected = probe.ok
    assert r.status_code == expected, r.text if path != "/events" else r.status_code
    if expected == 403:
        error = r.json()["error"]
        if scope is None:
            assert error["code"] == "forbidden_role"
            assert error["detail"]["action"] == needed
        else:
            assert error["code"] in ("not_your_inspection", "not_your_job")


@pytest.mark.parametrize("method,path", [
    (m, p) for (m, p), needed in ROUTES.items() if needed not in (PUBLIC, LAUNCH)
])  # fmt: skip
def test_every_route_but_the_open_ones_needs_a_login(
    tablet: Tablet, method: str, path: str
) -> None:
    probe = PROBES[(method, path)](tablet, "tanaka")
    with tablet.proc.client() as client:
        r = client.request(method, probe.path, **probe.kwargs)
    assert r.status_code == 401 and r.json()["error"]["code"] == "login_required", r.text


@pytest.mark.parametrize("who", PROBERS)
def test_the_login_answer_carries_what_the_role_may_do(tablet: Tablet, who: str) -> None:
    r = tablet.call(None, "POST", "/auth/login", json={"username": who, "password": PASSWORD})
    assert r.status_code == 200, r.text
    tablet.logins[who] = {"X-Kensa-Session": r.json()["token"]}
    want = {a.value: s.value for a, s in access.MATRIX[access.Role(USERS[who])].items()}
    assert r.json()["user"]["permissions"] == want
    assert tablet.ok(who, "GET", "/auth/me")["permissions"] == want


NG_VERDICT = {
    "final_result": "NG",
    "verification_time": 2.0,
    "defect_types": ["other"],
    "severity": "minor",
}


def test_a_supervisor_rejudges_a_completed_inspection_and_its_result_follows(
    tablet: Tablet,
) -> None:
    sid = tablet.completed("tanaka")
    path = f"/sessions/{sid}/items/{item_id('F-PISTON')}/rejudge"
    made = tablet.ok("suzuki", "POST", path, json=NG_VERDICT)
    assert made["final_result"] == "NG" and made["username"] == "suzuki"
    after = tablet.ok("tanaka", "GET", f"/sessions/{sid}")
    assert after["status"] == "completed" and after["result"] == "NG"
    item = next(i for i in after["items"] if i["item_code"] == "F-PISTON")
    assert item["result"] == "NG"
    # Nothing recorded is edited: the first verdict stays beside the new one.
    assert [v["final_result"] for v in item["verifications"]] == ["OK", "NG"]
    # Releasing it as OK again is a signed act.
    r = tablet.call("suzuki", "POST", path, json=VERIFY_OK)
    assert r.status_code == 428 and r.json()["error"]["code"] == "signature_required", r.text
    signed = {**VERIFY_OK, "signature": {"password": PASSWORD, "meaning": "released"}}
    tablet.ok("suzuki", "POST", path, json=signed)
    assert tablet.ok("tanaka", "GET", f"/sessions/{sid}")["result"] == "OK"


def test_only_a_completed_inspections_verified_item_is_rejudged(tablet: Tablet) -> None:
    sid = tablet.inspection("tanaka")
    path = f"/sessions/{sid}/items/{item_id('F-PISTON')}/rejudge"
    r = tablet.call("suzuki", "POST", path, json=VERIFY_OK)
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_completed", r.text


def test_set_aside_operations_are_shown_to_roles_that_may_see_them(tablet: Tablet) -> None:
    # The same status for everyone; the list of operations set aside only with ``set_aside``.
    db = Database(create_sqlite_engine(tablet.proc.data_dir / "kensa.db"))
    try:
        with db.atomic() as session:
            session.add(
                d.Outbox(
                    entity_type="inspection_session", entity_id=new_id(), operation="UPDATE",
                    data={}, set_aside_at=utcnow(), set_aside_reason="refused by the server",
                )
            )  # fmt: skip
    finally:
        db.dispose()
    for who in PROBERS:
        status = tablet.ok(who, "GET", "/sync/status")
        listed = len(status["set_aside"]) > 0
        assert listed is access.may_do(USERS[who], Action.SET_ASIDE), who
        assert status["set_aside_count"] >= 1
    with tablet.proc.client() as client:
        assert client.get("/sync/status").json()["set_aside"] == []


# --- the migration of existing rows -----------------------------------------------------------


def _role_check_sql(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'users'").fetchone()
    return str(sql)


def test_existing_device_users_keep_their_roles_and_supervisors_can_be_stored(
    device_path: Path,
) -> None:
    migrate.upgrade_device(device_path, "0007")
    with sqlite3.connect(device_path) as conn:
        conn.executemany(
            "INSERT INTO users (username, password_hash, role) VALUES (?, 'h', ?)",
            [("admin", "admin"), ("tanaka", "inspector")],
        )
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO users (username, password_hash, role) "
                         "VALUES ('suzuki', 'h', 'supervisor')")  # fmt: skip
    migrate.upgrade_device(device_path)
    assert shared_roles.role_check() in _role_check_sql(device_path)
    with sqlite3.connect(device_path) as conn:
        rows = dict(conn.execute("SELECT username, role FROM users").fetchall())
        assert rows == {"admin": "admin", "tanaka": "inspector"}
        conn.execute("INSERT INTO users (username, password_hash, role) "
                     "VALUES ('suzuki', 'h', 'supervisor')")  # fmt: skip
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO users (username, password_hash, role) "
                         "VALUES ('x', 'h', 'viewer')")  # fmt: skip
    # The old admin keeps everything it could do, connecting the tablet included.
    assert access.may_do("admin", Action.CONNECT) and access.may_do("admin", Action.USERS)
    assert access.sees_everyones("admin") and access.grant("admin", Action.DISCARD) is ANY
    # Back down, a supervisor is an admin again: the role that meant supervisor.
    migrate.downgrade_device(device_path, "0007")
    with sqlite3.connect(device_path) as conn:
        rows = dict(conn.execute("SELECT username, role FROM users").fetchall())
    assert rows == {"admin": "admin", "tanaka": "inspector", "suzuki": "admin"}


@pytest.mark.postgres
def test_existing_server_users_keep_their_roles_and_supervisors_can_be_stored(
    pg_url: str,
) -> None:
    migrate.upgrade_server(pg_url, "0007")
    engine = create_engine(pg_url)
    select_roles = sa.text("SELECT username, role FROM users")
    insert = sa.text(
        "INSERT INTO users (id, username, password_hash, role) "
        "VALUES (gen_random_uuid(), :name, 'h', :role)"
    )
    try:
        with engine.begin() as conn:
            conn.execute(insert, [{"name": "admin", "role": "admin"},
                                  {"name": "tanaka", "role": "inspector"}])  # fmt: skip
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"name": "suzuki", "role": "supervisor"})
        migrate.upgrade_server(pg_url)
        with engine.begin() as conn:
            conn.execute(insert, {"name": "suzuki", "role": "supervisor"})
            rows: dict[str, str] = {r.username: r.role for r in conn.execute(select_roles)}
        assert rows == {"admin": "admin", "tanaka": "inspector", "suzuki": "supervisor"}
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"name": "x", "role": "viewer"})
        # Back down, a supervisor becomes an inspector: here admin is the admin API.
        migrate.downgrade_server(pg_url, "0007")
        with engine.begin() as conn:
            rows = {r.username: r.role for r in conn.execute(select_roles)}
        assert rows == {"admin": "admin", "tanaka": "inspector", "suzuki": "inspector"}
    finally:
        engine.dispose()


# --- roles come from the server ----------------------------------------------------------------


def test_the_local_admin_connects_then_users_come_from_the_server_only(tmp_path: Path) -> None:
    def add(name: str, role: str) -> Result:
        args = ["user", "add", name, "--role", role, "--password", "local-pass-1"]
        return CliRunner().invoke(cli, [*args, "--data-dir", str(tmp_path)])

    made = add("chief", "admin")  # the bootstrap account of a fresh tablet
    assert made.exit_code == 0 and "added admin chief" in made.stdout, made.output
    db = Database(create_sqlite_engine(tmp_path / "kensa.db"))
    try:
        with db.atomic() as session:  # what a verified connect stores
            config.swap(session, "https://kensa.example:8443", SecretStr("t" * 32), new_id(), "T1")
        refused = add("tanaka", "inspector")
        assert refused.exit_code == 2, refused.output
        assert "takes its users from https://kensa.example:8443" in refused.stderr
        assert "kensa-server user add tanaka --role inspector" in refused.stderr
        with db.read() as session:
            assert [(u.username, u.role) for u in session.exec(select(d.User))] == [
                ("chief", "admin")
            ]
    finally:
        db.dispose()


# --- a supervisor made on the server -------------------------------------------------------


@pytest.mark.postgres
def test_a_supervisor_made_on_the_server_logs_in_on_the_tablet_as_one(
    device_db: Database, tmp_path: Path, site_server: Running
) -> None:
    server = Database(create_engine(site_server.site.database_url))
    try:
        with server.atomic() as session:
            masters.update_user(session, "suzuki", role="supervisor")
    finally:
        server.dispose()
    sync = SyncService(device_db, tmp_path / "device", "0.1.0")
    assert sync.connect(site_server.url, site_server.site.tokens["TAB-01"]).verified
    assert sync.run_once().ok
    with device_db.atomic() as session:
        result = auth.login(
            session, "suzuki", "suzuki-pass", key="k" * 32, source=lockout.source_of(None)
        )
        roles = {u.username: u.role for u in session.exec(select(d.User))}
    assert result.user.role == "supervisor"
    assert roles == {"admin": "admin", "tanaka": "inspector", "suzuki": "supervisor"}
    assert access.may_do(result.user.role, Action.OVERRIDE)


@pytest.mark.postgres
def test_a_rejudged_inspection_reaches_the_server_with_both_verdicts(
    device_db: Database, tmp_path: Path, site_server: Running
) -> None:
    sync = SyncService(device_db, tmp_path / "device", "0.1.0")
    assert sync.connect(site_server.url, site_server.site.tokens["TAB-01"]).verified
    assert sync.run_once().ok  # the masters and users
    ok = inspection.Verdict(final_result="OK", verification_time=1.0)
    ng = inspection.Verdict(
        final_result="NG", verification_time=2.0, defect_types=["other"], severity="minor"
    )
    with device_db.atomic() as session:
        users = {u.username: u for u in session.exec(select(d.User))}
        started = inspection.start(session, parse_payload(QR_JSON), users["tanaka"])
        sid = started.id
        items = inspection.session_items(session, sid)
        for item in items:
            inspection.verify(session, sid, item.item_id, ok, users["tanaka"])
        inspection.complete(session, sid)
    with device_db.atomic() as session:
        piston = next(i for i in items if i.item_code == "F-PISTON")
        inspection.rejudge(session, sid, piston.item_id, ng, users["suzuki"])
    report = sync.run_once()
    assert report.ok, report
    server = Database(create_engine(site_server.site.database_url))

    def on_server() -> tuple[str | None, str | None, list[str]]:
        with server.read() as session:
            row = session.get(s.InspectionSession, uuid.UUID(sid))
            if row is None:
                return None, None, []
            verdicts = session.exec(
                select(s.HumanVerificationResult.final_result).where(
                    s.HumanVerificationResult.session_id == row.id
                )
            ).all()
            return row.status, row.result, sorted(verdicts)

    expected = ("completed", "NG", ["NG"] + ["OK"] * len(items))
    try:
        wait_until(lambda: on_server() == expected, 60, what=f"{expected} on the server")
    finally:
        server.dispose()

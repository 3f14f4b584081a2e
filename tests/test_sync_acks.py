"""Applied acknowledgements and conflicts resolved by people, end to end: the real sidecar
(a process, its HTTP API) syncing with the real server (a process on PostgreSQL), its queue
applied by ``kensa-server process --once`` when the test says so.

Each outcome the server can give one of the tablet's operations is followed to the tablet's
status and history: applied (through "on this tablet" and "received"), a version conflict, a
rejection (another device's record) and a dead letter, each with its reason code. A supervisor
resolves a conflict either way; the choice reaches the server as a new operation, with its audit
entry on the tablet, and both ends hold the same record afterwards.

Operations a tablet's own screens never make (an update on another tablet's inspection, one whose
time cannot be read, a version made on the tablet that never reached the server) are
written into the tablet's outbox as such a tablet would hold them; everything from the push on is
the product's own path.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from schema.db import Database, create_engine
from sync.server import masters
from tests.support.sidecar import SidecarProcess
from tests.support.sync_harness import ServerProcess, Site, seed_site, wait_until

pytestmark = pytest.mark.postgres

BIN = Path(sys.executable).parent
QR = json.dumps({"product_id": "BRK-100", "batch_id": "ACK-1"})


@dataclass
class Rig:
    site: Site
    server: ServerProcess
    sidecar: SidecarProcess
    tablet: httpx.Client  # logged in as the inspector
    pg_url: str

    @property
    def device_db(self) -> Path:
        return self.sidecar.data_dir / "kensa.db"

    def drain(self) -> None:
        """The server's queue processor, once through what is due."""
        subprocess.run(
            [str(BIN / "kensa-server"), "process", "--once", "--database-url", self.pg_url],
            check=True, capture_output=True, timeout=120,
        )

    def server_rows(self, sql: str, **params: Any) -> list[Any]:
        engine = create_engine(self.pg_url)
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(sql), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            engine.dispose()

    def sync_state(self, sid: str) -> str:
        rows = self.tablet.get("/history", params={"page_size": 200}).json()["rows"]
        return str(next(r["sync_state"] for r in rows if r["id"] == sid))

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = self.tablet.get("/sync/status").json()
        return body

    def wait_state(self, sid: str, wanted: str) -> None:
        wait_until(lambda: self.sync_state(sid) == wanted, 60,
                   what=f"inspection {sid} to read {wanted}")

    def login(self, username: str, password: str) -> httpx.Client:
        client = self.sidecar.client()
        answer = client.post("/auth/login", json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        client.headers["X-Kensa-Session"] = answer.json()["token"]
        return client

    def outbox(self, entity_type: str, entity_id: str, operation: str,
               data: dict[str, Any], local: str | None = None, **params: Any) -> str:
        """An operation in the tablet's outbox, with ``local`` (an UPDATE of the tablet's own
        record) in the same transaction, as the tablet writes a change and its outbox row."""
        op_id = str(uuid.uuid4())
        with sqlite3.connect(self.device_db, timeout=30) as conn:
            if local:
                conn.execute(local, params)
            conn.execute(
                "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, "
                "retry_count, created_at) VALUES (?, ?, ?, ?, ?, 0, 0, ?)",
                (op_id, entity_type, entity_id, operation, json.dumps(data),
                 datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")),
            )
        return op_id

    def started(self) -> str:
        answer = self.tablet.post("/sessions", json={"qr_code": QR})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def applied(self, sid: str) -> None:
        """Pushed, applied on the server, and acknowledged to the tablet."""
        wait_until(lambda: self.sync_state(sid) in ("received", "applied"), 60,
                   what="the push")
        self.drain()
        self.wait_state(sid, "applied")


@pytest.fixture
def rig(pg_url: str, tmp_path: Path) -> Iterator[Rig]:
    files = tmp_path / "files"
    site = seed_site(pg_url, files.as_uri())
    db = Database(create_engine(pg_url))
    try:
        with db.atomic() as session:
            masters.add_user(session, "sato", "sato-pass-1", role="supervisor")
    finally:
        db.dispose()
    # No processor in the server: the test applies the queue when it wants to.
    server = ServerProcess(pg_url, tmp_path / "server", storage=files.as_uri(), processors=0)
    device = tmp_path / "tab01"
    sidecar = SidecarProcess(device, env={"KENSA_SYNC_INTERVAL_S": "0.3",
                                          "KENSA_AI_WORKERS": "0"})
    try:
        server.start()
        for args in (["connect", "--server", server.url, "--token", site.tokens["TAB-01"]],
                     ["sync-now"]):
            subprocess.run([str(BIN / "kensa"), "device", *args, "--data-dir", str(device)],
                           check=True, capture_output=True, timeout=120)
        sidecar.start()
        rig = Rig(site, server, sidecar, sidecar.client(), pg_url)
        rig.tablet = rig.login("tanaka", site.passwords["tanaka"])
        yield rig
    finally:
        sidecar.kill()
        server.kill()


def test_an_inspection_is_on_this_tablet_then_received_then_applied(rig: Rig) -> None:
    rig.server.stop()
    sid = rig.started()
    assert rig.sync_state(sid) == "local"
    assert rig.status()["inspections_local"] == 1

    rig.server.start()
    # Stored in the server's queue, not applied: no processor has run.
    rig.wait_state(sid, "received")
    status = rig.status()
    assert (status["inspections_local"], status["inspections_received"]) == (0, 1)

    rig.drain()
    rig.wait_state(sid, "applied")
    status = rig.status()
    assert (status["inspections_received"], status["inspections_applied"]) == (0, 1)
    assert status["inspections_attention"] == 0


def _local_version(rig: Rig, sid: str) -> int:
    with sqlite3.connect(rig.device_db) as conn:
        (version,) = conn.execute("SELECT version FROM inspection_sessions WHERE id = ?",
                                  (sid,)).fetchone()
    return int(version)


def _refusal(rig: Rig, client: httpx.Client, op_id: str) -> dict[str, Any]:
    def listed() -> bool:
        return any(r["op_id"] == op_id for r in client.get("/sync/refusals").json())

    wait_until(listed, 60, what=f"the refusal of {op_id} to reach the tablet")
    found: dict[str, Any] = next(r for r in client.get("/sync/refusals").json()
                                 if r["op_id"] == op_id)
    return found


def test_a_dead_letter_reaches_the_tablet_with_its_reason(rig: Rig) -> None:
    sid = rig.started()
    rig.applied(sid)
    version = _local_version(rig, sid)
    # A time the push stores as sent (it cannot tell a bad one from a device's own format) and
    # the queue can never apply.
    op_id = rig.outbox("inspection_session", sid, "UPDATE", {
        "id": sid, "completed_at": "yesterday", "base_version": version,
        "version": version + 1})
    wait_until(lambda: rig.status()["pending_rows"] == 0, 60, what="the push")
    rig.drain()
    rig.wait_state(sid, "attention")
    supervisor = rig.login("sato", "sato-pass-1")
    refused = _refusal(rig, supervisor, op_id)
    assert (refused["kind"], refused["reason_code"]) == ("dead_letter", "cannot_apply")
    assert "completed_at" in refused["reason"] and refused["session_id"] == sid
    assert refused["tablet"] is None  # nothing to choose between
    status = rig.status()
    assert status["inspections_attention"] == 1 and status["set_aside_count"] == 1
    # Only a version conflict is settled by choosing a side.
    answer = supervisor.post(f"/sync/refusals/{op_id}/resolve", json={"keep": "tablet"})
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_resolvable"


def test_an_operation_on_another_tablets_inspection_is_rejected(rig: Rig) -> None:
    # TAB-02's inspection, on the server.
    theirs, target = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC).isoformat()
    other = httpx.post(f"{rig.server.url}/sync/v1/auth",
                       headers={"Authorization": f"Bearer {rig.site.tokens['TAB-02']}"})
    access = other.json()["access_token"]
    pushed = httpx.post(f"{rig.server.url}/sync/v1/push", headers={
        "Authorization": f"Bearer {access}", "Content-Type": "application/json"},
        content=json.dumps({"device_id": rig.site.device_ids["TAB-02"], "device_type": "tablet",
                            "app_version": "0.1.0", "ops": [
            {"seq": 1, "op_id": str(uuid.uuid4()), "entity_type": "inspection_target",
             "entity_id": target, "operation": "INSERT", "data": {
                 "id": target, "product_id": "BRK-100", "batch_id": "B2", "qr_code": "x",
                 "created_at": now}},
            {"seq": 2, "op_id": str(uuid.uuid4()), "entity_type": "inspection_session",
             "entity_id": theirs, "operation": "INSERT", "data": {
                 "id": theirs, "target_id": target, "status": "in_progress",
                 "started_at": now, "version": 1}}]}))
    assert pushed.status_code == 200, pushed.text
    rig.drain()

    op_id = rig.outbox("inspection_session", theirs, "UPDATE", {
        "id": theirs, "status": "cancelled", "base_version": 1, "version": 2})
    wait_until(lambda: rig.status()["pending_rows"] == 0, 60, what="the push")
    rig.drain()
    supervisor = rig.login("sato", "sato-pass-1")
    refused = _refusal(rig, supervisor, op_id)
    assert (refused["kind"], refused["reason_code"]) == ("rejected", "other_device")
    assert refused["session_id"] is None  # not an inspection of this tablet
    [(status,)] = rig.server_rows("SELECT status FROM inspection_sessions WHERE id = :i",
                                  i=uuid.UUID(theirs))
    assert status == "in_progress"
    assert rig.status()["set_aside_count"] == 1


def _conflict(rig: Rig) -> tuple[str, str, int]:
    """An inspection whose record was changed on both sides since the version both held: the
    server's has a result, the tablet's was cancelled. Each side's change took the next version
    number, so the tablet's update carries the version the server already holds; it is still a
    conflict, not a redelivery to skip."""
    sid = rig.started()
    rig.applied(sid)
    base = _local_version(rig, sid)
    rig.server_rows("UPDATE inspection_sessions SET version = :v, result = 'NG' WHERE id = :i",
                    v=base + 1, i=uuid.UUID(sid))
    stamp = datetime.now(UTC)
    op_id = rig.outbox(
        "inspection_session", sid, "UPDATE",
        {"id": sid, "status": "cancelled", "completed_at": stamp.isoformat(),
         "base_version": base, "version": base + 1},
        local="UPDATE inspection_sessions SET status = 'cancelled', completed_at = :at, "
              "version = :v WHERE id = :i",
        at=stamp.strftime("%Y-%m-%d %H:%M:%S.%f"), v=base + 1, i=sid,
    )
    wait_until(lambda: rig.status()["pending_rows"] == 0, 60, what="the push")
    rig.drain()
    rig.wait_state(sid, "attention")
    return sid, op_id, base


@pytest.mark.parametrize("keep", ["tablet", "server"])
def test_a_supervisor_resolves_a_conflict_and_both_ends_agree(rig: Rig, keep: str) -> None:
    sid, op_id, base = _conflict(rig)
    supervisor = rig.login("sato", "sato-pass-1")
    refused = _refusal(rig, supervisor, op_id)
    assert (refused["kind"], refused["reason_code"]) == ("conflict", "version_conflict")
    # Side by side: what each end holds.
    assert refused["tablet"]["status"] == "cancelled" and refused["tablet"]["version"] == base + 1
    assert refused["server"]["status"] == "identified" and refused["server"]["result"] == "NG"
    assert refused["server"]["version"] == base + 1

    # The admin API shows the same conflict, side by side, not yet resolved.
    admin = ("admin", rig.site.passwords["admin"])
    listed = httpx.get(f"{rig.server.url}/admin/v1/conflicts", auth=admin).json()
    [mine] = [c for c in listed if c["op_id"] == op_id]
    assert mine["device"] == "TAB-01" and mine["resolved"] is False
    assert mine["tablet"]["status"] == "cancelled" and mine["server"]["result"] == "NG"

    # An inspector may see the status, not choose.
    assert rig.tablet.post(f"/sync/refusals/{op_id}/resolve",
                           json={"keep": keep}).status_code == 403
    answer = supervisor.post(f"/sync/refusals/{op_id}/resolve",
                             json={"keep": keep, "reason": "checked the part again"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["resolution"] == f"keep_{keep}"
    again = supervisor.post(f"/sync/refusals/{op_id}/resolve", json={"keep": keep})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_resolved"

    rig.applied(sid)
    expected = ("cancelled", None) if keep == "tablet" else ("identified", "NG")
    [(status, result, version)] = rig.server_rows(
        "SELECT status, result, version FROM inspection_sessions WHERE id = :i",
        i=uuid.UUID(sid))
    assert (status, result, version) == (*expected, base + 2)
    with sqlite3.connect(rig.device_db) as conn:
        local = conn.execute("SELECT status, result, version FROM inspection_sessions "
                             "WHERE id = ?", (sid,)).fetchone()
        (reason, username) = conn.execute(
            "SELECT reason, username FROM audit_log WHERE entity = 'inspection_session' "
            "AND entity_id = ? ORDER BY seq DESC LIMIT 1", (sid,)).fetchone()
    assert local == (*expected, base + 2)
    assert reason == f"sync conflict resolved: keep_{keep}: checked the part again"
    assert username == "sato"
    assert supervisor.get("/sync/refusals").json() == []
    assert rig.status()["set_aside_count"] == 0

    # The choice arrived as an operation of its own, applied.
    listed = httpx.get(f"{rig.server.url}/admin/v1/conflicts", auth=admin,
                       params={"open": "false"}).json()
    [mine] = [c for c in listed if c["op_id"] == op_id]
    assert mine["resolved"] is True and mine["resolved_by_op"]
    assert httpx.get(f"{rig.server.url}/admin/v1/conflicts", auth=admin).json() == []

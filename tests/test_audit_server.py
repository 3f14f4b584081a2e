"""The server's side of the audit trail on the real PostgreSQL: each device's chain applied from
the queue once per sequence and judged as it arrives, the server's own chain of administration,
``kensa-server audit verify`` against tampered tables, who made and changed each record, and
results corrected by new versions instead of edits."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from schema.db import Database, create_engine
from schema.formats import audit as fmt
from sync.server import audit, masters
from sync.server.auth import DeviceIdentity
from sync.server.cli import server_app
from sync.server.processor import QueueProcessor
from sync.server.push import store_batch
from sync.server.settings import ServerSettings
from tests.support.sync_harness import Site, seed_site

pytestmark = pytest.mark.postgres


class Tablet:
    """A tablet's pushes: records and, for each change, the audit entry the tablet would write
    (its digest over the record as it travels, ``schema.formats.audit``)."""

    def __init__(self, site: Site, db: Database, name: str = "TAB-01") -> None:
        self.db = db
        self.identity = DeviceIdentity(uuid.UUID(site.device_ids[name]), name, "tablet")
        self.seq = 0
        self.entries: list[dict[str, Any]] = []
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.settings = ServerSettings(data_dir=Path("/nonexistent"))

    def op(self, entity_type: str, entity_id: str, operation: str,
           data: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        return {"seq": self.seq, "op_id": str(uuid.uuid4()), "entity_type": entity_type,
                "entity_id": entity_id, "operation": operation, "data": data}

    def push(self, ops: list[dict[str, Any]]) -> None:
        body = {"device_id": self.identity.key, "device_type": "tablet", "app_version": "t",
                "ops": ops}
        store_batch(self.db, self.identity, json.dumps(body).encode(), self.settings)

    def entry(self, entity: str, key: str | None, action: str, row: dict[str, Any] | None,
              username: str | None = "tanaka", **extra: Any) -> dict[str, Any]:
        prev = self.entries[-1]["hash"] if self.entries else fmt.GENESIS
        fields = {
            "id": str(uuid.uuid4()), "seq": len(self.entries) + 1,
            "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "user_id": 2,
            "user_server_id": None, "username": username, "role": "inspector",
            "entity": entity, "entity_id": key, "action": action, "changes": None,
            "reason": None, "detail": None,
            "row_digest": None if row is None else fmt.row_digest(entity, row),
            "prev_hash": prev, **extra,
        }
        entry = {**fields, "hash": fmt.entry_hash(prev, fields)}
        self.entries.append(entry)
        return entry

    def entry_op(self, entry: dict[str, Any]) -> dict[str, Any]:
        return self.op("audit_entry", entry["id"], "INSERT", entry)

    def change(self, entity: str, key: str, operation: str, data: dict[str, Any],
               username: str | None = "tanaka") -> list[dict[str, Any]]:
        """The record's operation and its audit entry's, as one unit of work writes them."""
        travels = {k: v for k, v in data.items()
                   if k not in ("base_version", "user_server_id", "actor_username")}
        if operation == "INSERT":
            row = self.rows[(entity, key)] = travels
        else:
            row = self.rows[(entity, key)] = {**self.rows[(entity, key)], **travels}
        entry = self.entry(entity, key, operation.lower(), row, username)
        return [self.op(entity, key, operation, data), self.entry_op(entry)]

    def inspection(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        now = datetime.now(UTC).isoformat()
        ids = {k: str(uuid.uuid4()) for k in ("target", "session", "image", "ai", "check")}
        ops = [
            *self.change("inspection_target", ids["target"], "INSERT", {
                "id": ids["target"], "product_id": "BRK-100", "batch_id": "A12-3456",
                "qr_code": "{}", "created_at": now}),
            *self.change("inspection_session", ids["session"], "INSERT", {
                "id": ids["session"], "target_id": ids["target"], "status": "in_progress",
                "started_at": now, "version": 1, "user_server_id": None,
                "username": "tanaka"}),
            *self.change("inspection_image", ids["image"], "INSERT", {
                "id": ids["image"], "session_id": ids["session"], "sha256": "a" * 64,
                "file_size": 10, "created_at": now}),
            # The job runner's: an entry of nobody.
            *self.change("ai_inspection_result", ids["ai"], "INSERT", {
                "id": ids["ai"], "session_id": ids["session"], "image_id": ids["image"],
                "overall_result": "OK", "confidence": 0.9123, "processing_time": 0.05,
                "detailed_results": '{"label": "ok"}', "version": 1, "created_at": now},
                username=None),
            *self.change("human_verification_result", ids["check"], "INSERT", {
                "id": ids["check"], "session_id": ids["session"], "ai_result_id": ids["ai"],
                "final_result": "OK", "verification_time": 2.5, "username": "tanaka",
                "user_server_id": None, "version": 1, "created_at": now}),
            *self.change("inspection_session", ids["session"], "UPDATE", {
                "id": ids["session"], "status": "completed", "result": "OK",
                "completed_at": now, "base_version": 1, "version": 2}),
        ]
        return ops, ids


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[tuple[Site, Database, str]]:
    seeded = seed_site(pg_url, (tmp_path / "files").as_uri())
    db = Database(create_engine(pg_url))
    yield seeded, db, pg_url
    db.dispose()


@pytest.fixture
def tablet(site: tuple[Site, Database, str]) -> Tablet:
    return Tablet(site[0], site[1])


def drain(db: Database) -> None:
    QueueProcessor(db, retry_s=0.0).drain()


def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    with db.read() as session:
        return list(session.execute(sa.text(sql), params).all())


def execute(db: Database, sql: str, **params: Any) -> None:
    with db.atomic() as session:
        session.execute(sa.text(sql), params)


def chain_state(db: Database, tablet: Tablet) -> Any:
    return rows(db, "SELECT * FROM audit_chains WHERE chain = :c", c=tablet.identity.key)[0]


def verify(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(server_app, ["audit", "verify", *args, "--database-url", url])
    return result.exit_code, result.output


# --- devices' chains as they arrive ---------------------------------------------------------


def test_a_devices_chain_is_kept_once_and_judged_on_arrival(
    site: tuple[Site, Database, str], tablet: Tablet
) -> None:
    _, db, url = site
    ops, _ = tablet.inspection()
    tablet.push(ops)
    drain(db)
    state = chain_state(db, tablet)
    assert (state.status, state.last_seq, state.last_hash) == ("ok", 6, tablet.entries[-1]["hash"])
    stored = rows(db, "SELECT seq, canonical, hash FROM audit_log WHERE chain = :c ORDER BY seq",
                  c=tablet.identity.key)
    assert [r.seq for r in stored] == [1, 2, 3, 4, 5, 6]
    # What is kept is what was hashed, byte for byte.
    for row, entry in zip(stored, tablet.entries, strict=True):
        assert bytes(row.canonical) == fmt.canonical({k: v for k, v in entry.items()
                                                      if k != "hash"})
    # The same entry again (a resend under a new operation id) is a duplicate, nothing more.
    tablet.push([tablet.entry_op(tablet.entries[2])])
    drain(db)
    assert len(rows(db, "SELECT id FROM audit_log WHERE chain = :c", c=tablet.identity.key)) == 6
    assert chain_state(db, tablet).status == "ok"
    code, out = verify(url, "--device", "TAB-01")
    assert code == 0, out
    assert "1 chain(s), 6 entries, 5 record(s) checked: clean" in out


def test_entries_that_arrive_early_wait_for_the_ones_they_follow(
    site: tuple[Site, Database, str], tablet: Tablet
) -> None:
    _, db, _ = site
    entries = [tablet.entry("request", None, "refused", None) for _ in range(5)]
    tablet.push([tablet.entry_op(e) for e in entries[2:]])
    drain(db)
    assert (chain_state(db, tablet).last_seq, chain_state(db, tablet).status) == (0, "ok")
    tablet.push([tablet.entry_op(e) for e in entries[:2]])
    drain(db)
    state = chain_state(db, tablet)
    assert (state.status, state.last_seq, state.last_hash) == ("ok", 5, entries[-1]["hash"])


def test_a_broken_entry_is_judged_on_arrival_and_kept(
    site: tuple[Site, Database, str], tablet: Tablet
) -> None:
    _, db, _ = site
    entries = [tablet.entry("request", None, "refused", None) for _ in range(4)]
    entries[2] = {**entries[2], "username": "suzuki"}  # not what was hashed
    tablet.push([tablet.entry_op(e) for e in entries])
    drain(db)
    state = chain_state(db, tablet)
    assert (state.status, state.last_seq, state.broken_seq) == ("broken", 2, 3)
    assert state.broken_reason.startswith("hash_mismatch")
    assert len(rows(db, "SELECT id FROM audit_log WHERE chain = :c", c=tablet.identity.key)) == 4


def test_a_second_entry_under_a_sequence_breaks_the_chain(
    site: tuple[Site, Database, str], tablet: Tablet
) -> None:
    _, db, _ = site
    first = tablet.entry("request", None, "refused", None)
    tablet.push([tablet.entry_op(first)])
    other_fields = {**{k: v for k, v in first.items() if k != "hash"}, "username": "suzuki"}
    other = {**other_fields, "hash": fmt.entry_hash(fmt.GENESIS, other_fields)}
    tablet.push([tablet.op("audit_entry", other["id"], "INSERT", other)])
    drain(db)
    state = chain_state(db, tablet)
    assert (state.status, state.broken_seq) == ("broken", 1)
    assert "duplicate_seq" in state.broken_reason
    refused = rows(db, "SELECT refusal, last_error FROM tauri_sync_queue "
                       "WHERE entity_type = 'audit_entry' AND refusal IS NOT NULL")
    assert [r.refusal for r in refused] == ["conflict"]
    # The stored chain holds (the first entry 1 is kept); the verdict kept on arrival is told.
    code, out = verify(site[2], "--device", "TAB-01")
    assert code == 1 and "TAB-01 entry 1: duplicate_seq: a second entry 1 arrived" in out, out


@pytest.mark.parametrize(
    ("data", "reason"),
    [({"seq": "one"}, "seq"), ({"hash": "XYZ"}, "hash"), ({"seq": 2**60}, "seq")],
)
def test_an_entry_that_is_no_entry_is_set_aside_with_its_reason(
    site: tuple[Site, Database, str], tablet: Tablet, data: dict[str, Any], reason: str
) -> None:
    _, db, _ = site
    entry = {**tablet.entry("request", None, "refused", None), **data}
    tablet.push([tablet.entry_op(entry)])
    drain(db)
    refused = rows(db, "SELECT refusal, last_error FROM tauri_sync_queue "
                       "WHERE entity_type = 'audit_entry'")
    assert refused[0].refusal == "dead_letter"
    assert reason in refused[0].last_error
    assert rows(db, "SELECT id FROM audit_log WHERE chain = :c", c=tablet.identity.key) == []


# --- verify against tampering ----------------------------------------------------------------


def _tamper_result(db: Database, ids: dict[str, str]) -> None:
    execute(db, "UPDATE ai_inspection_results SET overall_result = 'NG' WHERE id = :i",
            i=uuid.UUID(ids["ai"]))


def _tamper_entry(db: Database, chain: str) -> None:
    execute(db, "UPDATE audit_log SET canonical = convert_to(replace(convert_from(canonical, "
                "'UTF8'), '\"tanaka\"', '\"suzuki\"'), 'UTF8') WHERE chain = :c AND seq = 3",
            c=chain)


def _delete_entry(db: Database, chain: str) -> None:
    execute(db, "DELETE FROM audit_log WHERE chain = :c AND seq = 3", c=chain)


def _reorder(db: Database, chain: str) -> None:
    # Entries 3 and 4 trade sequence numbers (through a free number: the pair is unique).
    execute(db, "UPDATE audit_log SET seq = 1000 WHERE chain = :c AND seq = 3", c=chain)
    execute(db, "UPDATE audit_log SET seq = 3 WHERE chain = :c AND seq = 4", c=chain)
    execute(db, "UPDATE audit_log SET seq = 4 WHERE chain = :c AND seq = 1000", c=chain)


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("result", "entry 4: record_changed: ai_inspection_results {ai}: overall_result is 'NG'"),
        ("entry", "entry 3: hash_mismatch: entry 3 is not what was hashed"),
        ("delete", "entry 4: sequence_gap: entries 3..3 are missing before entry 4"),
        ("reorder", "entry 4: sequence_gap: entries 3..3 are missing before entry 4"),
    ],
)
def test_verify_names_the_first_broken_entry_of_a_tampered_store(
    site: tuple[Site, Database, str], tablet: Tablet, tamper: str, expected: str
) -> None:
    _, db, url = site
    ops, ids = tablet.inspection()
    tablet.push(ops)
    drain(db)
    assert verify(url)[0] == 0
    chain = tablet.identity.key
    {"result": lambda: _tamper_result(db, ids), "entry": lambda: _tamper_entry(db, chain),
     "delete": lambda: _delete_entry(db, chain), "reorder": lambda: _reorder(db, chain)}[tamper]()
    code, out = verify(url, "--device", "TAB-01")
    assert code == 1, out
    assert f"TAB-01 {expected.format(**ids)}" in out, out
    # The whole store (the server's chain too) says the same about this device.
    code, out = verify(url)
    assert code == 1 and expected.format(**ids) in out


def test_the_newest_verified_entry_changed_is_caught(
    site: tuple[Site, Database, str], tablet: Tablet
) -> None:
    """The newest entry has no successor whose link would tell: the verdict kept does."""
    _, db, url = site
    entries = [tablet.entry("request", None, "refused", None) for _ in range(3)]
    tablet.push([tablet.entry_op(e) for e in entries])
    drain(db)
    execute(db, "DELETE FROM audit_log WHERE chain = :c AND seq = 3", c=tablet.identity.key)
    code, out = verify(url, "--device", "TAB-01")
    assert code == 1 and "entry 3: verified_entry_changed" in out, out


def test_verify_a_device_that_has_no_chain(site: tuple[Site, Database, str]) -> None:
    code, out = verify(site[2], "--device", "TAB-99")
    assert code == 2 and "no audit chain" in out


# --- the server's own chain ------------------------------------------------------------------


def test_the_servers_own_actions_are_a_chain_with_who_did_them(
    site: tuple[Site, Database, str],
) -> None:
    _, db, url = site
    with db.atomic() as session:
        audit.act_as(session, audit.admin_actor(session, "admin"))
        target = masters.add_target(session, "GEAR-7", "ギア", "1")
        masters.update_target(session, "GEAR-7", product_name="ギア 7")
        target_id = str(target.id)
    admin_id = rows(db, "SELECT id FROM users WHERE username = 'admin'")[0].id
    stored = rows(db, "SELECT created_by, updated_by FROM inspection_targets_master "
                      "WHERE product_code = 'GEAR-7'")[0]
    assert (stored.created_by, stored.updated_by) == (admin_id, admin_id)
    entries = rows(db, "SELECT seq, username, entity, entity_id, action, canonical FROM audit_log "
                       "WHERE chain = 'server' ORDER BY seq")
    # The seeding (the console) came first; the admin's two acts are the newest.
    assert [(e.username, e.entity, e.entity_id, e.action) for e in entries[-2:]] == [
        ("admin", "target", target_id, "insert"), ("admin", "target", target_id, "update")]
    update = json.loads(entries[-1].canonical)
    assert update["changes"]["product_name"] == {"before": "ギア", "after": "ギア 7"}
    assert "updated_by" not in update["changes"]  # the same admin before and after
    assert json.loads(entries[0].canonical)["detail"]["via"] == "console"
    assert rows(db, "SELECT status, last_seq FROM audit_chains WHERE chain = 'server'")[0] == (
        "ok", len(entries))
    code, out = verify(url, "--device", "server")
    assert code == 0, out
    # A master edited behind the server's back no longer matches its newest entry.
    execute(db, "UPDATE inspection_targets_master SET product_name = 'x' "
                "WHERE product_code = 'GEAR-7'")
    code, out = verify(url, "--device", "server")
    assert code == 1
    assert (f"server entry {len(entries)}: record_changed: inspection_targets_master "
            f"{target_id} no longer matches") in out


def test_a_password_change_is_audited_without_the_hash(site: tuple[Site, Database, str]) -> None:
    _, db, url = site
    with db.atomic() as session:
        masters.update_user(session, "tanaka", password="new-pass-1", role="admin")
    newest = rows(db, "SELECT canonical FROM audit_log WHERE chain = 'server' "
                      "ORDER BY seq DESC LIMIT 1")[0]
    changes = json.loads(newest.canonical)["changes"]
    assert changes["password_hash"] == {"before": "(not shown)", "after": "(changed)"}
    assert changes["role"] == {"before": "inspector", "after": "admin"}
    assert b"argon2" not in bytes(newest.canonical)
    assert verify(url)[0] == 0


# --- who made and changed each record; results corrected, never edited -----------------------


def test_records_name_the_user_their_operations_name(
    site: tuple[Site, Database, str], tablet: Tablet
) -> None:
    _, db, _ = site
    ops, ids = tablet.inspection()
    users = {r.username: r.id for r in rows(db, "SELECT username, id FROM users")}
    # A supervisor discards it: the entry of the change says who did it (the operation itself
    # names nobody, as a tablet's update of a session does).
    ops += tablet.change("inspection_session", ids["session"], "UPDATE", {
        "id": ids["session"], "status": "cancelled", "base_version": 2, "version": 3},
        username="suzuki")
    tablet.push(ops)
    drain(db)
    session = rows(db, "SELECT created_by, updated_by, user_id FROM inspection_sessions "
                       "WHERE id = :i", i=uuid.UUID(ids["session"]))[0]
    assert session == (users["tanaka"], users["suzuki"], users["tanaka"])
    check = rows(db, "SELECT created_by, updated_by FROM human_verification_results "
                     "WHERE id = :i", i=uuid.UUID(ids["check"]))[0]
    assert check == (users["tanaka"], users["tanaka"])
    image = rows(db, "SELECT created_by, updated_by FROM inspection_images WHERE id = :i",
                 i=uuid.UUID(ids["image"]))[0]
    assert image == (users["tanaka"], users["tanaka"])
    # The job runner's result names nobody: nothing is inferred from the session's inspector.
    ai = rows(db, "SELECT created_by, updated_by FROM ai_inspection_results WHERE id = :i",
              i=uuid.UUID(ids["ai"]))[0]
    assert ai == (None, None)


def test_an_operation_names_who_acted_when_it_arrives_before_its_entry(
    site: tuple[Site, Database, str], tablet: Tablet
) -> None:
    _, db, _ = site
    ops, ids = tablet.inspection()
    tablet.push(ops)
    drain(db)
    change = tablet.op("inspection_session", ids["session"], "UPDATE", {
        "id": ids["session"], "status": "cancelled", "base_version": 2, "version": 3,
        "actor_username": "suzuki"})
    tablet.push([change])
    drain(db)
    suzuki = rows(db, "SELECT id FROM users WHERE username = 'suzuki'")[0].id
    assert rows(db, "SELECT updated_by FROM inspection_sessions WHERE id = :i",
                i=uuid.UUID(ids["session"]))[0].updated_by == suzuki


def test_a_result_is_corrected_by_a_new_version_and_never_deleted(
    site: tuple[Site, Database, str], tablet: Tablet
) -> None:
    _, db, url = site
    ops, ids = tablet.inspection()
    ops += tablet.change("human_verification_result", ids["check"], "UPDATE", {
        "id": ids["check"], "final_result": "NG", "defect_types": ["scratch"],
        "severity": "major", "base_version": 1, "version": 2, "actor_username": "suzuki"},
        username="suzuki")
    tablet.push(ops)
    drain(db)
    line = rows(db, "SELECT id, supersedes, final_result, updated_by FROM "
                    "human_verification_results WHERE session_id = :s ORDER BY received_at, id",
                s=uuid.UUID(ids["session"]))
    original = next(r for r in line if str(r.id) == ids["check"])
    correction = next(r for r in line if r.supersedes is not None)
    assert (original.final_result, original.supersedes) == ("OK", None)
    assert correction.supersedes == original.id
    assert correction.final_result == "NG"
    assert correction.id == uuid.uuid5(uuid.UUID(ids["check"]), "version 2")
    suzuki = rows(db, "SELECT id FROM users WHERE username = 'suzuki'")[0].id
    assert correction.updated_by == suzuki
    # The record checked by verify is the current version.
    assert verify(url, "--device", "TAB-01")[0] == 0
    # A correction of a version that is no longer the newest is a conflict; a delete is
    # refused; the line stays as it is.
    tablet.push([
        tablet.op("human_verification_result", ids["check"], "UPDATE", {
            "id": ids["check"], "final_result": "OK", "base_version": 1, "version": 3}),
        tablet.op("human_verification_result", ids["check"], "DELETE", {
            "id": ids["check"], "base_version": 2}),
    ])
    drain(db)
    refusals = rows(db, "SELECT operation, refusal, last_error FROM tauri_sync_queue "
                        "WHERE entity_id = :i AND refusal IS NOT NULL ORDER BY seq",
                    i=uuid.UUID(ids["check"]))
    assert [(r.operation, r.refusal) for r in refusals] == [
        ("UPDATE", "conflict"), ("DELETE", "dead_letter")]
    assert "never deleted" in refusals[1].last_error
    assert len(rows(db, "SELECT id FROM human_verification_results WHERE session_id = :s",
                    s=uuid.UUID(ids["session"]))) == 2


@pytest.mark.parametrize("tamper", [False, True])
def test_the_embedded_sqlite_server_keeps_and_verifies_its_chain(
    tmp_path: Path, tamper: bool
) -> None:
    """The single-site default (SQLite in the data directory) audits its administration too."""
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path)]
    assert runner.invoke(server_app, ["target", "add", "GEAR-7", "ギア", *base]).exit_code == 0
    assert runner.invoke(server_app, ["device", "add", "TAB-09", *base]).exit_code == 0
    if tamper:
        db = Database(create_engine(f"sqlite:///{tmp_path / 'server.db'}"))
        try:
            execute(db, "UPDATE devices SET token_generation = 7 WHERE name = 'TAB-09'")
        finally:
            db.dispose()
    result = runner.invoke(server_app, ["audit", "verify", "--json", *base])
    report = json.loads(result.output)
    assert (report["chains"], report["entries"]) == (1, 2)
    if tamper:
        assert result.exit_code == 1
        assert report["problems"][0]["kind"] == "record_changed"
        assert report["problems"][0]["message"].startswith("devices ")
    else:
        assert result.exit_code == 0 and report["clean"]


def test_admin_api_changes_name_the_admin_who_made_them(
    site: tuple[Site, Database, str], tmp_path: Path
) -> None:
    import httpx

    from tests.support.sync_harness import ServerProcess

    _, db, url = site
    with (
        ServerProcess(url, tmp_path / "server", storage=(tmp_path / "files").as_uri()) as server,
        httpx.Client(base_url=server.url, auth=("admin", "admin-pass"), timeout=30) as admin,
    ):
        made = admin.post("/admin/v1/targets", json={"product_code": "GEAR-9",
                                                     "product_name": "ギア 9"})
        assert made.status_code == 201, made.text
        changed = admin.patch("/admin/v1/users/tanaka", json={"full_name": "田中 一郎"})
        assert changed.status_code == 200, changed.text
        refused = admin.post("/admin/v1/targets", json={"product_code": "GEAR-9",
                                                        "product_name": "again"})
        assert refused.status_code == 409
    admin_id = rows(db, "SELECT id FROM users WHERE username = 'admin'")[0].id
    target = rows(db, "SELECT id, created_by, updated_by FROM inspection_targets_master "
                      "WHERE product_code = 'GEAR-9'")[0]
    assert (target.created_by, target.updated_by) == (admin_id, admin_id)
    newest = rows(db, "SELECT username, entity, entity_id, action, canonical FROM audit_log "
                      "WHERE chain = 'server' ORDER BY seq DESC LIMIT 2")
    assert [(e.username, e.entity, e.action) for e in newest] == [
        ("admin", "user", "update"), ("admin", "target", "insert")]
    assert newest[1].entity_id == str(target.id)
    entry = json.loads(newest[0].canonical)
    assert entry["changes"]["full_name"] == {"before": "田中", "after": "田中 一郎"}
    assert entry["detail"] == {"via": "admin_api"} and entry["role"] == "admin"
    assert entry["user_server_id"] == str(admin_id)
    # The refused request wrote nothing, its entry included; the chain holds.
    assert verify(url)[0] == 0


def test_processors_in_parallel_judge_one_chain_in_sequence(
    site: tuple[Site, Database, str], tablet: Tablet
) -> None:
    import threading

    _, db, url = site
    entries = [tablet.entry("request", None, "refused", None) for _ in range(60)]
    for start in range(0, 60, 10):
        tablet.push([tablet.entry_op(e) for e in entries[start:start + 10]])
    processors = [QueueProcessor(db, batch=7, retry_s=0.0) for _ in range(3)]
    threads = [threading.Thread(target=p.drain) for p in processors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    drain(db)
    state = chain_state(db, tablet)
    assert (state.status, state.last_seq, state.last_hash) == ("ok", 60, entries[-1]["hash"])
    assert verify(url, "--device", "TAB-01")[0] == 0

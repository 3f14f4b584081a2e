"""The queue processor on PostgreSQL: several at once, rows out of order, conflicts, rows that
cannot apply, and AI results becoming pipeline and component executions."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from schema.db import Database, create_engine
from sync.server.apply import MasterCache, Outcome, apply_row
from sync.server.auth import DeviceIdentity
from sync.server.processor import QueueProcessor
from sync.server.push import store_batch
from sync.server.settings import ServerSettings
from tests.support.sync_harness import Site, seed_site

pytestmark = pytest.mark.postgres


class Device:
    def __init__(self, site: Site, db: Database) -> None:
        self.db = db
        self.identity = DeviceIdentity(uuid.UUID(site.device_ids["TAB-01"]), "TAB-01", "tablet")
        self.seq = 0
        self.settings = ServerSettings(data_dir=Path("/nonexistent"))

    def op(self, entity_type: str, entity_id: str, operation: str, data: dict[str, Any],
           priority: int = 0) -> dict[str, Any]:
        self.seq += 1
        return {"seq": self.seq, "op_id": str(uuid.uuid4()), "entity_type": entity_type,
                "entity_id": entity_id, "operation": operation, "data": data,
                "priority": priority}

    def push(self, ops: list[dict[str, Any]], device_time: str | None = None) -> None:
        body = {"device_id": self.identity.key, "device_type": "tablet", "app_version": "t",
                "ops": ops}
        store_batch(self.db, self.identity, json.dumps(body).encode(), self.settings,
                    device_time)

    def inspection(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        now = datetime.now(UTC).isoformat()
        ids = {k: str(uuid.uuid4()) for k in ("target", "session", "image", "ai", "check")}
        ops = [
            self.op("inspection_target", ids["target"], "INSERT", {
                "id": ids["target"], "product_id": "BRK-100", "batch_id": "A12-3456",
                "qr_code": "{}", "created_at": now}),
            self.op("inspection_session", ids["session"], "INSERT", {
                "id": ids["session"], "target_id": ids["target"], "status": "in_progress",
                "started_at": now, "version": 1, "user_server_id": None,
                "username": "tanaka"}),
            self.op("inspection_image", ids["image"], "INSERT", {
                "id": ids["image"], "session_id": ids["session"], "sha256": "a" * 64,
                "file_size": 10, "created_at": now}),
            self.op("ai_inspection_result", ids["ai"], "INSERT", {
                "id": ids["ai"], "session_id": ids["session"], "image_id": ids["image"],
                "overall_result": "OK", "confidence": 0.9, "processing_time": 0.05,
                "detailed_results": '{"label": "ok"}', "pipeline_version": "3",
                "timings": {"decode": 3.0, "pre": 4.0, "infer": 30.0, "post": 1.0,
                            "judge": 0.5},
                "step_timings": [
                    {"node": node, "op": op, "stage": stage, "start_ms": start, "ms": ms}
                    for node, op, stage, start, ms in (
                        ("roi", "crop", "pre", 3.5, 1.0), ("prep", "resize", "pre", 4.5, 3.0),
                        ("model", "onnx", "infer", 7.5, 30.0),
                        ("label", "argmax", "post", 37.5, 1.0),
                        ("judge", "judge", "judge", 38.5, 0.5))],
                "created_at": now}),
            self.op("human_verification_result", ids["check"], "INSERT", {
                "id": ids["check"], "session_id": ids["session"], "ai_result_id": ids["ai"],
                "final_result": "OK", "verification_time": 2.5, "username": "tanaka",
                "user_server_id": None, "created_at": now}),
            self.op("inspection_session", ids["session"], "UPDATE", {
                "id": ids["session"], "status": "completed", "result": "OK",
                "completed_at": now, "base_version": 1, "version": 2}),
        ]
        return ops, ids


@pytest.fixture
def device(pg_url: str, tmp_path: Path) -> Iterator[Device]:
    site = seed_site(pg_url, (tmp_path / "files").as_uri())
    db = Database(create_engine(pg_url))
    yield Device(site, db)
    db.dispose()


def scalar(db: Database, sql: str, **params: Any) -> Any:
    with db.read() as session:
        return session.execute(sa.text(sql), params).scalar()


def test_several_processors_apply_every_row_exactly_once(device: Device) -> None:
    for _ in range(4):
        ops: list[dict[str, Any]] = []
        for _ in range(10):
            ops += device.inspection()[0]
        device.push(ops)
    processors = [QueueProcessor(device.db, batch=7, retry_s=0.0) for _ in range(3)]
    done: list[int] = []
    threads = [threading.Thread(target=lambda p=p: done.append(p.drain())) for p in processors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    QueueProcessor(device.db, retry_s=0.0).drain()  # rows retried after a parent landed late
    db = device.db
    assert scalar(db, "SELECT count(*) FROM tauri_sync_queue WHERE processed_at IS NULL") == 0
    assert scalar(db, "SELECT count(*) FROM inspection_sessions WHERE status = 'completed'") == 40
    assert scalar(db, "SELECT count(*) FROM ai_inspection_results") == 40
    assert scalar(db, "SELECT count(*) FROM pipeline_executions") == 40
    assert scalar(db, "SELECT count(*) FROM component_executions") == 200
    assert scalar(db, "SELECT count(DISTINCT step_name) FROM component_executions") == 5
    assert scalar(db, "SELECT count(*) FROM inspection_sessions WHERE user_id IS NOT NULL") == 40
    assert scalar(db, "SELECT min(pipeline_version) FROM pipeline_executions") == 3


def test_an_update_ahead_of_its_insert_waits_then_applies(device: Device) -> None:
    ops, ids = device.inspection()
    ops[-1]["priority"] = 5  # the session's UPDATE overtakes its INSERT
    device.push(ops)
    processor = QueueProcessor(device.db, retry_s=0.0)
    processor.process_once()
    waiting = scalar(device.db, "SELECT last_error FROM tauri_sync_queue WHERE priority = 5")
    assert waiting and "not applied yet" in waiting
    processor.drain()
    assert scalar(device.db, "SELECT version FROM inspection_sessions WHERE id = :i",
                  i=uuid.UUID(ids["session"])) == 2
    assert scalar(device.db, "SELECT count(*) FROM tauri_sync_queue "
                             "WHERE processed_at IS NULL") == 0


def test_a_conflicting_update_keeps_the_server_row_and_says_so(device: Device) -> None:
    ops, ids = device.inspection()
    device.push(ops)
    stale = device.op("inspection_session", ids["session"], "UPDATE", {
        "id": ids["session"], "status": "cancelled", "base_version": 1, "version": 3})
    device.push([stale])
    QueueProcessor(device.db, retry_s=0.0).drain()
    status = scalar(device.db, "SELECT status FROM inspection_sessions WHERE id = :i",
                    i=uuid.UUID(ids["session"]))
    assert status == "completed"
    note = scalar(device.db, "SELECT last_error FROM tauri_sync_queue WHERE op_id = :o",
                  o=uuid.UUID(stale["op_id"]))
    assert note.startswith("conflict: server holds version 2")


def test_a_row_that_cannot_apply_is_kept_with_its_error(device: Device) -> None:
    orphan = str(uuid.uuid4())
    missing_session = str(uuid.uuid4())
    device.push([device.op("inspection_image", orphan, "INSERT", {
        "id": orphan, "session_id": missing_session, "sha256": "b" * 64})])
    processor = QueueProcessor(device.db, retry_s=0.0)
    for _ in range(3):
        processor.process_once()
    row = None
    with device.db.read() as session:
        row = session.execute(sa.text(
            "SELECT processed_at, retry_count, last_error, last_retry_at, apply_attempts, "
            "next_attempt_at, refusal FROM tauri_sync_queue")).one()
    # Counted in the server's own column: retry_count stays what the device sent.
    assert row[0] is None and row[1] == 0 and missing_session in row[2] and row[3] is not None
    assert row[4] == 3 and row[5] is not None and row[6] is None


def test_the_same_record_inserted_twice_is_one_row(device: Device) -> None:
    ops, ids = device.inspection()
    device.push(ops)
    again = device.op("inspection_target", ids["target"], "INSERT", ops[0]["data"])
    device.push([again])
    QueueProcessor(device.db, retry_s=0.0).drain()
    assert scalar(device.db, "SELECT count(*) FROM inspection_targets") == 1
    assert scalar(device.db, "SELECT count(*) FROM tauri_sync_queue "
                             "WHERE processed_at IS NULL") == 0


def test_a_row_that_fails_as_no_rule_foresaw_is_set_aside_and_the_rest_apply(
    device: Device,
) -> None:
    # Before, such a row took its whole batch down at every claim, for ever: every device's rows
    # behind it waited.
    ops, ids = device.inspection()
    device.push(ops)
    doomed = uuid.UUID(ids["image"])

    def apply(session: Any, row: Any, cache: MasterCache) -> Outcome:
        if row.entity_id == doomed:
            raise OverflowError("date value out of range")
        return apply_row(session, row, cache)

    processor = QueueProcessor(device.db, retry_s=0.0, apply=apply)
    processor.drain()
    # The photo's record is set aside with what went wrong; what does not hang on it applied.
    with device.db.read() as session:
        refusal, error = session.execute(sa.text(
            "SELECT refusal, last_error FROM tauri_sync_queue WHERE entity_id = :i"),
            {"i": doomed}).one()
    assert refusal == "dead_letter"
    assert "could not be applied: OverflowError: date value out of range" in error
    assert scalar(device.db, "SELECT count(*) FROM inspection_targets WHERE id = :i",
                  i=uuid.UUID(ids["target"])) == 1
    assert scalar(device.db, "SELECT count(*) FROM inspection_sessions WHERE id = :i",
                  i=uuid.UUID(ids["session"])) == 1


@pytest.mark.parametrize(
    ("changes", "version"),
    [
        ({"pipeline_version": "\u00b2"}, None),  # a digit to str.isdigit, not to int()
        ({"pipeline_version": "12345678901"}, None),  # past the column
        ({"created_at": "0001-01-01T00:00:00+00:00", "processing_time": 3600}, 3),
    ],
    ids=["superscript two", "eleven digits", "year one"],
)
def test_an_ai_result_with_values_at_the_edge_still_applies(
    device: Device, changes: dict[str, Any], version: int | None
) -> None:
    ops, ids = device.inspection()
    ai = next(op for op in ops if op["entity_type"] == "ai_inspection_result")
    ai["data"].update(changes)
    device.push(ops)
    QueueProcessor(device.db, retry_s=0.0).drain()
    assert scalar(device.db, "SELECT count(*) FROM tauri_sync_queue "
                             "WHERE processed_at IS NULL OR refusal IS NOT NULL") == 0
    assert scalar(device.db, "SELECT count(*) FROM pipeline_executions "
                             "WHERE ai_result_id = :i", i=uuid.UUID(ids["ai"])) == 1
    assert scalar(device.db, "SELECT pipeline_version FROM pipeline_executions "
                             "WHERE ai_result_id = :i", i=uuid.UUID(ids["ai"])) == version


@pytest.mark.parametrize(
    ("ahead", "stamp"),
    [(timedelta(days=1), "0001-01-01T00:00:00+00:00"), (timedelta(days=-1), "9999-12-31T23:00:00")],
    ids=["a day ahead, year one", "a day behind, year 9999"],
)
def test_a_skewed_clock_with_times_at_the_calendars_ends_is_stored_and_applied(
    device: Device, ahead: timedelta, stamp: str
) -> None:
    # Moving such a time onto the server's clock overflowed: the whole push was a 500, resent
    # for ever.
    ops, ids = device.inspection()
    session_insert = next(op for op in ops if op["entity_type"] == "inspection_session")
    session_insert["data"]["started_at"] = stamp
    device.push(ops, device_time=(datetime.now(UTC) + ahead).isoformat())
    QueueProcessor(device.db, retry_s=0.0).drain()
    assert scalar(device.db, "SELECT count(*) FROM tauri_sync_queue "
                             "WHERE processed_at IS NULL OR refusal IS NOT NULL") == 0
    started = scalar(device.db, "SELECT started_at FROM inspection_sessions WHERE id = :i",
                     i=uuid.UUID(ids["session"]))
    # Year one is kept as sent (a past time is); 9999 is in the future, so the receive time.
    assert started.year == 1 if stamp.startswith("0001") else started.year == datetime.now(UTC).year



def test_a_claim_takes_the_first_due_rows_of_all_its_devices_in_apply_order(
        pg_url: str, tmp_path: Path) -> None:
    """The claim reads each device's first rows off its index and then locks those alone; what
    it takes must be what one query over every pending row would take: the first due rows by
    (priority DESC, created_at, id) across the devices, none applied, none waiting out a
    backoff."""
    from sync.server.processor import _claim, _claim_rows

    site = seed_site(pg_url, (tmp_path / "files").as_uri())
    db = Database(create_engine(pg_url))
    try:
        for name in ("TAB-01", "TAB-02"):
            tablet = Device(site, db)
            tablet.identity = DeviceIdentity(uuid.UUID(site.device_ids[name]), name, "tablet")
            ops: list[dict[str, Any]] = []
            for n in range(4):
                ops += tablet.inspection()[0]
                ops[-1]["priority"] = n % 3
            tablet.push(ops)
        now = datetime.now(UTC)
        with db.atomic() as session:
            ids = list(session.execute(sa.text(
                "SELECT id FROM tauri_sync_queue ORDER BY id")).scalars())
            # Pushed at different times, some applied, some waiting out a backoff.
            session.execute(sa.text(
                "UPDATE tauri_sync_queue SET created_at = :now - (id % 7) * interval '1 second'"),
                {"now": now})
            session.execute(sa.text(
                "UPDATE tauri_sync_queue SET processed_at = :now WHERE id = ANY(:ids)"),
                {"now": now, "ids": ids[::5]})
            session.execute(sa.text(
                "UPDATE tauri_sync_queue SET next_attempt_at = :later WHERE id = ANY(:ids)"),
                {"later": now + timedelta(minutes=5), "ids": ids[1::6]})
            session.execute(sa.text(
                "UPDATE tauri_sync_queue SET next_attempt_at = :earlier WHERE id = ANY(:ids)"),
                {"earlier": now - timedelta(minutes=5), "ids": ids[2::6]})
        for limit in (1, 7, 25, 1000):
            with db.atomic() as session:
                expected = [r.id for r in session.execute(_claim(now, limit)).all()]
            with db.atomic() as session:
                claimed = [r.id for r in _claim_rows(session, now, limit)]
            assert claimed == expected, limit
            assert len(claimed) == min(limit, len(set(ids) - set(ids[::5]) - set(ids[1::6])))
    finally:
        db.dispose()

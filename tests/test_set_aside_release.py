"""Sending a set-aside operation again: back in the queue with an audit entry, in one unit of
work; never one the server refused after storing it (its op id is the server's already)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from schema.db import Database
from sidecar import audit_verify
from sidecar.errors import Conflict, NotFound
from sidecar.services import conflicts


def _set_aside(db: Database, op_id: str) -> int:
    with db.atomic() as session:
        result = session.execute(sa.text(
            "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, "
            "retry_count, created_at, set_aside_at, set_aside_reason) VALUES (:op, "
            "'inspection_target', :entity, 'INSERT', '{}', 0, 3, '2026-12-03 08:00:00', "
            "'2026-12-03 08:01:00', 'invalid_request: behind a proxy')"),
            {"op": op_id, "entity": str(uuid.uuid4())})
        seq = result.lastrowid
    assert isinstance(seq, int)
    return seq


def _row(db: Database, seq: int) -> tuple[object, ...] | None:
    with db.read() as session:
        found = session.execute(sa.text(
            "SELECT set_aside_at, set_aside_reason, retry_count FROM outbox WHERE seq = :s"),
            {"s": seq}).first()
    return tuple(found) if found is not None else None


def test_a_released_operation_is_queued_again_with_its_audit_entry(
    device_db: Database, device_path: Path
) -> None:
    op_id = str(uuid.uuid4())
    seq = _set_aside(device_db, op_id)
    with device_db.atomic() as session:
        conflicts.release_set_aside(session, seq, "the proxy is gone")
    assert _row(device_db, seq) == (None, None, 0)
    with device_db.read() as session:
        entry = session.execute(sa.text(
            "SELECT action, entity, entity_id, reason, detail FROM audit_log "
            "ORDER BY seq DESC LIMIT 1")).one()
        queued = session.execute(sa.text(
            "SELECT count(*) FROM outbox WHERE entity_type = 'audit_entry' "
            "AND set_aside_at IS NULL")).scalar_one()
    assert entry[:4] == ("release", "sync_operation", op_id, "the proxy is gone")
    detail = json.loads(entry[4])
    assert detail["seq"] == seq and detail["set_aside_reason"] == "invalid_request: behind a proxy"
    assert queued == 1  # the entry itself travels like any other record
    assert audit_verify.verify(device_path).clean


def test_nothing_set_aside_there_is_not_found_and_nothing_is_written(device_db: Database) -> None:
    seq = _set_aside(device_db, str(uuid.uuid4()))
    with device_db.atomic() as session:
        conflicts.release_set_aside(session, seq)
    for missing in (seq, seq + 1):  # released already; never there
        with pytest.raises(NotFound) as refused, device_db.atomic() as session:
            conflicts.release_set_aside(session, missing)
        assert refused.value.code == "set_aside_not_found"
    with device_db.read() as session:
        assert session.execute(sa.text(
            "SELECT count(*) FROM audit_log WHERE action = 'release'")).scalar_one() == 1


def test_an_operation_the_server_refused_is_settled_among_the_refusals(
    device_db: Database,
) -> None:
    op_id = str(uuid.uuid4())
    seq = _set_aside(device_db, op_id)
    with device_db.atomic() as session:
        session.execute(sa.text(
            "INSERT INTO sync_refusals (op_id, seq, entity_type, entity_id, operation, kind, "
            "reason_code, reason, data) VALUES (:op, :seq, 'inspection_target', 'x', 'INSERT', "
            "'dead_letter', 'cannot_apply', 'refused', '{}')"), {"op": op_id, "seq": seq})
    with pytest.raises(Conflict) as refused, device_db.atomic() as session:
        conflicts.release_set_aside(session, seq)
    assert refused.value.code == "refused_by_server"
    row = _row(device_db, seq)
    assert row is not None and row[0] is not None  # still set aside

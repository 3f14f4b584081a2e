"""Operations the server stored but will never apply: a version conflict (the server kept its own
record), a rejection (the operation touched another device's record) or a dead letter (it could
never apply, or the record it needs never came). They come back to the device as set-aside
outbox rows whose reason starts with that kind, so the status API shows them beside the
operations the server rejected outright when they were pushed; ``sync_refusals`` keeps each with
its reason code and, for a version conflict, the server's version of the record, for a
supervisor to resolve (``sidecar.services.conflicts``)."""

from __future__ import annotations

import json

import sqlalchemy as sa

from schema.db import Database
from schema.types import utcnow
from sync.device import state
from sync.device.client import SyncClient
from sync.device.outbox_store import sqlite_time

STREAM = "conflicts"

# A refused operation still in the outbox (pushed, its answer lost, not sent again yet) is set
# aside where it is: ignored, it would go again, the server would count it as stored, and the
# tablet would drop it as delivered while its refusal waited unseen.
_INSERT = sa.text(
    "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, "
    "retry_count, created_at, set_aside_at, set_aside_reason) VALUES (:op_id, :entity_type, "
    ":entity_id, :operation, :data, 0, 0, :now, :now, :reason) "
    "ON CONFLICT (op_id) DO UPDATE SET set_aside_at = excluded.set_aside_at, "
    "set_aside_reason = excluded.set_aside_reason WHERE outbox.set_aside_at IS NULL"
)


_KEEP = sa.text(
    "INSERT OR IGNORE INTO sync_refusals (op_id, seq, entity_type, entity_id, operation, kind, "
    "reason_code, reason, data, server_data, refused_at) VALUES (:op_id, :seq, :entity_type, "
    ":entity_id, :operation, :kind, :reason_code, :reason, :data, :server_data, :now)"
)


def refused_cursor(db: Database) -> int:
    with db.read() as session:
        return int(state.get(session, STREAM).cursor or 0)


def fetch_refused(db: Database, client: SyncClient) -> int:
    """Record every refusal the server reports after the stored cursor; returns how many."""
    after = refused_cursor(db)
    total = 0
    while True:
        page = client.conflicts(after)
        if not page.conflicts:
            return total
        now = sqlite_time(utcnow())
        with db.atomic() as session:
            session.execute(_INSERT, [
                {"op_id": op.op_id, "entity_type": op.entity_type, "entity_id": op.entity_id,
                 "operation": op.operation, "data": json.dumps(op.data), "now": now,
                 "reason": f"{op.kind}: {op.reason}"}
                for op in page.conflicts
            ])
            session.execute(_KEEP, [
                {"op_id": op.op_id, "seq": op.seq, "entity_type": op.entity_type,
                 "entity_id": op.entity_id, "operation": op.operation, "kind": op.kind,
                 "reason_code": op.reason_code, "reason": op.reason,
                 "data": json.dumps(op.data),
                 "server_data": None if op.server_data is None else json.dumps(op.server_data),
                 "now": now}
                for op in page.conflicts
            ])
            state.set_cursor(session, STREAM, str(page.cursor))
        total += len(page.conflicts)
        after = page.cursor

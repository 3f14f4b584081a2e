"""What the server tells a device about its own operations: how far they are applied, and what
each one that ended otherwise was (the changes feed's ``acks``, ``GET /sync/v1/conflicts``, the
admin API's conflicts).

A device's operations are numbered by its outbox sequence. The queue applies them out of order
(priorities, several processors, rows that wait for a parent), so the watermark is the sequence
just below the device's lowest one still pending: everything up to it has left the queue,
applied or refused, and the refusals are listed with their reasons. Read in one statement, so
the three numbers are one snapshot of the queue.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from schema import server as s
from sync.conflicts import bounded_reason, reason_code
from sync.protocol import Acks, RefusedOp
from sync.server.apply import SPECS
from sync.server.processor import PREFIXES, QUEUE

_DEVICES: sa.Table = s.Device.__table__  # type: ignore[attr-defined]


def _acks_query(device_id: uuid.UUID) -> sa.Select[Any]:
    key = str(device_id)
    lowest_pending = (
        sa.select(sa.func.min(QUEUE.c.seq))
        .where(QUEUE.c.device_id == key, QUEUE.c.processed_at.is_(None))
        .scalar_subquery()
    )
    newest_refusal = (
        sa.select(sa.func.max(QUEUE.c.refusal_seq))
        .where(QUEUE.c.device_id == key)
        .scalar_subquery()
    )
    return sa.select(_DEVICES.c.last_applied_seq, lowest_pending, newest_refusal).where(
        _DEVICES.c.id == device_id
    )


def acks(session: Session, device_id: uuid.UUID) -> Acks:
    row = session.execute(_acks_query(device_id)).first()
    if row is None:
        return Acks(applied_through_seq=0, received_through_seq=0, refused_through=0)
    received = int(row[0] or 0)
    lowest_pending = row[1]
    applied = received if lowest_pending is None else int(lowest_pending) - 1
    return Acks(
        applied_through_seq=max(0, applied),
        received_through_seq=received,
        refused_through=int(row[2] or 0),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def server_version(session: Session, entity_type: str, entity_id: Any) -> dict[str, Any] | None:
    """The record as the server holds it now, in the fields a device sends for it (None: not a
    versioned record, or not there)."""
    spec = SPECS.get(entity_type)
    if spec is None or not spec.versioned:
        return None
    table = spec.table
    names = ["id", *(name for name in spec.columns if name in table.c)]
    found = session.execute(
        sa.select(*(table.c[name] for name in names)).where(table.c.id == entity_id)
    ).first()
    if found is None:
        return None
    return {name: _jsonable(value) for name, value in zip(names, found, strict=True)}


def refused_op(session: Session, row: Any) -> RefusedOp:
    """A refused queue row as the device and the admin API read it."""
    reason = (row.last_error or "").removeprefix(PREFIXES.get(row.refusal, ""))
    server = (
        server_version(session, row.entity_type, row.entity_id)
        if row.refusal == "conflict"
        else None
    )
    return RefusedOp(
        id=row.refusal_seq, seq=row.seq, op_id=str(row.op_id), entity_type=row.entity_type,
        entity_id=str(row.entity_id), operation=row.operation, kind=row.refusal,
        reason=bounded_reason(reason),
        reason_code=reason_code(row.refusal, row.entity_type, reason),
        data=row.data, server_data=server,
    )


def conflicts_for_admin(
    session: Session, *, device: str | None, open_only: bool, limit: int
) -> list[dict[str, Any]]:
    """Version conflicts, newest first, each with the tablet's operation and the server's record
    side by side; ``resolved`` once a later operation of the same device on the same record was
    applied — the choice a supervisor makes on the tablet travels as such an operation."""
    later = QUEUE.alias("later")
    resolved_by = (
        sa.select(later.c.op_id)
        .where(
            later.c.device_id == QUEUE.c.device_id,
            later.c.entity_id == QUEUE.c.entity_id,
            later.c.id > QUEUE.c.id,
            later.c.processed_at.is_not(None),
            later.c.refusal.is_(None),
        )
        .order_by(later.c.id)
        .limit(1)
        .scalar_subquery()
    )
    # The queue names a device by its id as text; there are a few hundred devices at most.
    names = {str(d.id): d.name for d in session.exec(select(s.Device)).all()}
    query = (
        sa.select(QUEUE, resolved_by.label("resolved_by"))
        .where(QUEUE.c.refusal == "conflict")
        .order_by(QUEUE.c.processed_at.desc(), QUEUE.c.id.desc())
        .limit(limit)
    )
    if device is not None:
        wanted = [key for key, name in names.items() if name == device]
        query = query.where(QUEUE.c.device_id.in_(wanted))
    found: list[dict[str, Any]] = []
    for row in session.execute(query).all():
        if open_only and row.resolved_by is not None:
            continue
        op = refused_op(session, row)
        found.append({
            "device": names.get(row.device_id), "device_id": row.device_id, "op_id": op.op_id,
            "seq": op.seq, "entity_type": op.entity_type, "entity_id": op.entity_id,
            "operation": op.operation, "reason_code": op.reason_code, "reason": op.reason,
            "refused_at": _jsonable(row.processed_at), "tablet": op.data,
            "server": op.server_data,
            "resolved": row.resolved_by is not None,
            "resolved_by_op": None if row.resolved_by is None else str(row.resolved_by),
        })
    return found

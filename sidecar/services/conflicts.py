"""Operations the server refused, and a supervisor's choice on a version conflict.

The server keeps its own record when an update conflicts (``sync.conflicts``) and says so with
its version of the record (``sync.device.refused`` keeps both in ``sync_refusals``). Nothing is
decided for the people who know the part: a supervisor sees the tablet's version and the server's
side by side and chooses one. The choice is a new update of the record, based on the version the
server holds, carrying the chosen values — in the tablet's own record, its outbox row and its
audit entry, one unit of work like every change — so the server applies it as it applies any
update, and both ends hold the same record again. The refused operation leaves the outbox's
set-aside list; its ``sync_refusals`` row keeps who chose what, and when.

Callers own the unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import Session, col, select

from schema import device as d
from schema.types import utcnow
from sidecar import audit, outbox
from sidecar.errors import Conflict, NotFound

Keep = Literal["tablet", "server"]

# What a supervisor chooses between, per record both ends version; the rest of the record is
# the same on both sides (ids, the product, the times it was made).
Versioned = d.InspectionSession | d.InspectionSessionItem
CHOICES: dict[str, tuple[str, ...]] = {
    "inspection_session": ("status", "result", "completed_at"),
    "inspection_session_item": ("status", "result", "attempts"),
}
_TIMES = frozenset({"completed_at"})


@dataclass(frozen=True)
class Refusal:
    row: d.SyncRefusal
    session_id: str | None
    # For a conflict that can be resolved: each side's values of the fields chosen between.
    tablet: dict[str, Any] | None
    server: dict[str, Any] | None


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _session_of(session: Session, row: d.SyncRefusal) -> str | None:
    if row.entity_type == "inspection_session":
        # Another tablet's inspection is named by an operation, not held here.
        mine = session.get(d.InspectionSession, row.entity_id)
        return mine.id if mine is not None else None
    for model in (d.InspectionSessionItem, d.InspectionImage, d.AIInspectionResult,
                  d.HumanVerificationResult, d.Signature):
        if outbox.ENTITY_TYPES[model] == row.entity_type:
            found: Any = session.get(model, row.entity_id)
            return str(found.session_id) if found is not None else None
    return None


def _record(session: Session, row: d.SyncRefusal) -> Versioned | None:
    if row.entity_type == "inspection_session":
        return session.get(d.InspectionSession, row.entity_id)
    if row.entity_type == "inspection_session_item":
        return session.get(d.InspectionSessionItem, row.entity_id)
    return None


def _sides(session: Session, row: d.SyncRefusal) -> tuple[dict[str, Any], dict[str, Any]] | None:
    fields = CHOICES.get(row.entity_type)
    if row.kind != "conflict" or fields is None or not row.server_data:
        return None
    record = _record(session, row)
    if record is None or "version" not in row.server_data:
        return None
    tablet = {name: _jsonable(getattr(record, name)) for name in fields}
    tablet["version"] = record.version
    server = {name: row.server_data.get(name) for name in fields}
    server["version"] = row.server_data["version"]
    return tablet, server


def _view(session: Session, row: d.SyncRefusal) -> Refusal:
    sides = _sides(session, row) if row.resolved_at is None else None
    return Refusal(row=row, session_id=_session_of(session, row),
                   tablet=sides[0] if sides else None, server=sides[1] if sides else None)


def open_refusals(session: Session, limit: int = 200) -> list[Refusal]:
    """The refusals nobody has resolved, oldest first."""
    rows = session.exec(
        select(d.SyncRefusal)
        .where(col(d.SyncRefusal.resolved_at).is_(None))
        .order_by(col(d.SyncRefusal.seq))
        .limit(limit)
    ).all()
    return [_view(session, r) for r in rows]


def resolve(
    session: Session, op_id: str, keep: Keep, user: d.User, reason: str | None = None
) -> Refusal:
    """Settle a version conflict with the tablet's or the server's values (see the module)."""
    row = session.get(d.SyncRefusal, op_id)
    if row is None:
        raise NotFound(f"no refused operation {op_id}", code="refusal_not_found")
    if row.resolved_at is not None:
        raise Conflict("this conflict was resolved already", code="already_resolved",
                       detail={"resolution": row.resolution})
    sides = _sides(session, row)
    if sides is None:
        raise Conflict(
            "only a version conflict on an inspection or its item, whose server version is "
            "known, can be resolved by choosing a side",
            code="not_resolvable", detail={"kind": row.kind, "entity_type": row.entity_type},
        )
    tablet, server = sides
    fields = CHOICES[row.entity_type]
    record = _record(session, row)
    assert record is not None  # _sides found it
    chosen = tablet if keep == "tablet" else server
    changed: dict[str, Any] = {}
    for name in fields:
        value = chosen[name]
        if name in _TIMES and isinstance(value, str):
            value = datetime.fromisoformat(value)
        changed[name] = value
        setattr(record, name, value)
    base = int(server["version"])
    record.version = base + 1
    record.updated_at = utcnow()
    session.add(record)
    resolution = "keep_tablet" if keep == "tablet" else "keep_server"
    # The entry names the choice; the supervisor's own words, when given, follow it.
    audit.give_reason(session, f"sync conflict resolved: {resolution}"
                      + (f": {reason}" if reason else ""))
    outbox.record_update(session, record, changed, base_version=base)
    row.resolved_at = utcnow()
    row.resolution = resolution
    row.resolved_by = user.username
    session.add(row)
    session.execute(
        sa.text("DELETE FROM outbox WHERE op_id = :op AND set_aside_at IS NOT NULL"),
        {"op": op_id},
    )
    return Refusal(row=row, session_id=_session_of(session, row), tablet=None, server=None)


def release_set_aside(session: Session, seq: int, reason: str | None = None) -> None:
    """Put an operation the tablet set aside back in the queue, with an audit entry naming who
    sent it again and why: after the cause was mended (a server updated to accept it, a proxy
    taken out of the way). An operation the server refused after storing it is not one of
    these: it is settled among the refusals (``resolve``), since the server keeps its op id and
    would take the same operation for a repeat."""
    row = session.execute(
        sa.text(
            "SELECT op_id, entity_type, entity_id, operation, set_aside_reason FROM outbox "
            "WHERE seq = :seq AND set_aside_at IS NOT NULL"
        ),
        {"seq": seq},
    ).first()
    if row is None:
        raise NotFound(f"no set-aside operation {seq}", code="set_aside_not_found")
    op_id, entity_type, entity_id, operation, cause = row
    if session.get(d.SyncRefusal, op_id) is not None:
        raise Conflict(
            f"the server refused operation {op_id} after storing it; it is settled among the "
            "refusals, not sent again",
            code="refused_by_server",
        )
    audit.record(
        session,
        entity="sync_operation",
        entity_id=op_id,
        action="release",
        reason=reason,
        detail={
            "seq": seq,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "operation": operation,
            "set_aside_reason": (cause or "")[:500] or None,
        },
    )
    session.execute(
        sa.text(
            "UPDATE outbox SET set_aside_at = NULL, set_aside_reason = NULL, retry_count = 0 "
            "WHERE seq = :seq"
        ),
        {"seq": seq},
    )


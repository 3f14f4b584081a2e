"""The push endpoint's work: validate a device's batch and store it in ``tauri_sync_queue``.

One transaction per batch: every operation is stored, or none is. Operations are deduplicated by
``op_id`` in that transaction (``ON CONFLICT DO NOTHING``), so a batch resent after a lost answer,
a crash or a replay stores nothing twice; the answer names the sequence through which the batch
is stored, and only then does the device delete those rows.

An operation that can never be stored (unknown entity type, an id that is not a UUID, an UPDATE
without its base version…) fails the batch with 422 naming it; the device sets that operation
aside with the server's reason and resends the rest.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from schema import server as s
from schema.db import Database
from schema.formats import workflow
from schema.types import utcnow
from sync.bounds import provenance_problem, signature_problem
from sync.conflicts import ORIGINAL_TIMESTAMPS_KEY, clamp_future, clock_offset, correct_timestamps
from sync.errors import (
    Forbidden,
    InvalidRequest,
    OperationRejected,
    PayloadTooLarge,
    RateLimited,
)
from sync.protocol import PushBatch, PushOp, PushRequest, PushResponse
from sync.server.auth import DeviceIdentity
from sync.server.backpressure import LAG, LagReading, PushGate
from sync.server.db_faults import Fault, classify, describe
from sync.server.notify import announce
from sync.server.settings import ServerSettings

QUEUE = s.TauriSyncQueue.__table__  # type: ignore[attr-defined]
DEVICES = s.Device.__table__  # type: ignore[attr-defined]


def _summarise(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def parse_batch(body: bytes, device: DeviceIdentity, settings: ServerSettings) -> tuple[
    PushRequest, list[PushOp]
]:
    if len(body) > settings.max_batch_bytes:
        raise PayloadTooLarge(
            f"batch of {len(body)} bytes is over the limit of {settings.max_batch_bytes}",
            max_bytes=settings.max_batch_bytes,
        )
    try:
        # The common case, a valid batch, is validated in one pass straight from the JSON.
        strict = PushBatch.model_validate_json(body)
    except ValidationError:
        strict = None
    if strict is not None:
        request = PushRequest(device_id=strict.device_id, device_type=strict.device_type,
                              app_version=strict.app_version, ops=[{}] * len(strict.ops))
        _check_envelope(request, device, settings)
        ops = strict.ops
    else:
        request, ops = _diagnose(body, device, settings)
    _check_semantics(request, ops)
    return request, ops


def _check_envelope(request: PushRequest, device: DeviceIdentity,
                    settings: ServerSettings) -> None:
    if request.device_id != device.key:
        raise Forbidden("a device may only push its own operations")
    if request.device_type != device.device_type:
        raise Forbidden(
            f"device {device.name} is registered as a {device.device_type}, "
            f"not a {request.device_type}"
        )
    if len(request.ops) > settings.max_batch_ops:
        raise PayloadTooLarge(
            f"batch of {len(request.ops)} operations is over the limit of "
            f"{settings.max_batch_ops}",
            max_ops=settings.max_batch_ops,
        )


def _diagnose(body: bytes, device: DeviceIdentity, settings: ServerSettings) -> NoReturn:
    """Say what is wrong with a batch that failed validation: the envelope, or which ops."""
    try:
        request = PushRequest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidRequest(f"malformed batch: {_summarise(exc)}") from exc
    _check_envelope(request, device, settings)
    rejected = []
    for raw in request.ops:
        if isinstance(raw, dict) and raw.get("device_id") not in (None, request.device_id):
            raise Forbidden("a device may only push its own operations")
        try:
            PushOp.model_validate_json(json.dumps(raw))
        except ValidationError as exc:
            rejected.append(_rejection(raw, _summarise(exc)))
    raise OperationRejected(
        f"{len(rejected)} operation(s) of the batch are invalid", rejected=rejected
    )


def _rejection(raw: Any, reason: str) -> dict[str, Any]:
    seq = raw.get("seq") if isinstance(raw, dict) else None
    op_id = raw.get("op_id") if isinstance(raw, dict) else None
    return {
        "seq": seq if isinstance(seq, int) else None,
        "op_id": op_id if isinstance(op_id, str) else None,
        "reason": reason,
    }


def _check_semantics(request: PushRequest, ops: Sequence[PushOp]) -> None:
    seqs = [op.seq for op in ops]
    op_ids = [op.op_id for op in ops]
    if len(set(seqs)) != len(seqs) or len(set(op_ids)) != len(op_ids):
        raise InvalidRequest("malformed batch: a sequence or operation id appears twice")
    rejected = []
    for op in ops:
        reason = _semantic_problem(request, op)
        if reason:
            rejected.append({"seq": op.seq, "op_id": str(op.op_id), "reason": reason})
    if rejected:
        raise OperationRejected(
            f"{len(rejected)} operation(s) of the batch are invalid", rejected=rejected
        )


def _semantic_problem(request: PushRequest, op: PushOp) -> str | None:
    if op.device_id is not None and op.device_id != request.device_id:
        raise Forbidden("a device may only push its own operations")
    if op.device_type is not None and op.device_type != request.device_type:
        return "device_type differs from the batch's"
    data_id = op.data.get("id")
    if data_id is not None and str(data_id) != str(op.entity_id):
        return f"data.id {data_id!r} differs from entity_id {op.entity_id}"
    if op.operation in ("UPDATE", "DELETE"):
        base = op.data.get("base_version")
        if not isinstance(base, int) or isinstance(base, bool) or base < 1:
            return f"{op.operation} needs an integer base_version >= 1"
    if op.operation == "UPDATE":
        version = op.data.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            return "UPDATE needs the new integer version"
    if op.entity_type == "ai_inspection_result":
        problem = provenance_problem(op.data)
        if problem:
            return f"data.{problem}"
    if op.entity_type == "signature":
        problem = signature_problem(op.operation, op.data)
        if problem:
            return f"data.{problem}" if op.operation == "INSERT" else problem
    return _state_problem(op)


# A session or item is in a state of the move table, the one the tablet's database holds too.
_STATES = {
    "inspection_session": ("session", workflow.SESSION_STATES),
    "inspection_session_item": ("item", workflow.ITEM_STATES),
}


def _state_problem(op: PushOp) -> str | None:
    kind = _STATES.get(op.entity_type)
    if kind is None or "status" not in op.data:
        return None
    what, states = kind
    status = op.data["status"]
    if isinstance(status, str) and status in states:
        return None
    return f"data.status {status!r} is not an inspection {what} state ({', '.join(states)})"


def _device_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else None


def store_batch(
    db: Database,
    device: DeviceIdentity,
    body: bytes,
    settings: ServerSettings,
    device_time_header: str | None = None,
    *,
    gate: PushGate | None = None,
    lag: LagReading | None = None,
) -> PushResponse:
    request, ops = parse_batch(body, device, settings)
    if gate is not None:
        _admit(gate, lag, device, len(ops))
    received = utcnow()
    device_now = _device_time(device_time_header)
    offset = clock_offset(device_now, received) if device_now else 0.0
    threshold = settings.clock_skew_threshold_s
    skewed = abs(offset) >= threshold
    if skewed:
        ops = [_corrected(op, offset, threshold) for op in ops]
    clamped = [_clamped(op, received, threshold) for op in ops]
    moved = skewed or any(new is not old for new, old in zip(clamped, ops, strict=True))
    ops = clamped
    try:
        with db.atomic() as session:
            if session.get_bind().dialect.name == "postgresql":
                # The validated body itself is the document PostgreSQL unpacks, unless
                # timestamps had to be moved (then the corrected ops are encoded again).
                doc = _encode_ops(ops) if moved else body.decode("utf-8")
                inserted = _insert_postgresql(session, doc, request, received)
                if inserted:
                    announce(session)
            else:
                inserted = _insert_rows(session, _rows(request, ops, received))
            duplicates = _check_duplicates(session, request.device_id, ops, inserted)
            last = _advance_device(session, device, max(op.seq for op in ops),
                                   request.app_version)
    except DBAPIError as exc:
        if classify(exc) is not Fault.PERMANENT:
            raise
        # A value the database refuses for good (a number jsonb cannot hold, a NUL…) would
        # fail every resend of the batch: name the operations that hold one, so the device sets
        # them aside and the rest flows.
        rejected = _refused_by_database(db, request, ops, received)
        if not rejected:
            raise
        raise OperationRejected(
            f"{len(rejected)} operation(s) of the batch hold values the database refuses",
            rejected=rejected,
        ) from exc
    return PushResponse(
        applied_through_seq=ops[-1].seq,
        stored=len(inserted),
        duplicates=duplicates,
        last_applied_seq=last,
    )


def _admit(gate: PushGate, lag: LagReading | None, device: DeviceIdentity, rows: int) -> None:
    """Refuse the batch with 429 before anything is stored when the device is over its budget or
    the processors are behind (``sync.server.backpressure``)."""
    decision = gate.admit(device.key, rows, lag.current() if lag is not None else 0.0)
    if decision.admit:
        return
    if decision.reason == LAG:
        raise RateLimited(
            "the server is behind applying what it received; try again shortly",
            code="apply_lag", retry_after=decision.retry_after_s,
        )
    raise RateLimited(
        f"device {device.name} is pushing faster than its budget; try again shortly",
        code="push_budget", retry_after=decision.retry_after_s,
    )


def apply_lag_s(db: Database) -> float:
    """How long the oldest operation a processor could apply now has waited (received, or
    since its backoff ended), as /metrics reports it; 0 with nothing due."""
    now = utcnow()
    with db.read() as session:
        oldest = session.execute(
            sa.select(sa.func.min(sa.func.coalesce(QUEUE.c.next_attempt_at, QUEUE.c.created_at)))
            .where(QUEUE.c.processed_at.is_(None),
                   sa.or_(QUEUE.c.next_attempt_at.is_(None), QUEUE.c.next_attempt_at <= now))
        ).scalar()
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # SQLite hands timestamps back without their zone (UTC)
        oldest = oldest.replace(tzinfo=UTC)
    return float(max(0.0, (now - oldest).total_seconds()))


def _refused_by_database(
    db: Database, request: PushRequest, ops: Sequence[PushOp], received: datetime
) -> list[dict[str, Any]]:
    """Each operation stored alone in its own savepoint; the ones the database refuses for
    good, as rejections. Nothing is kept: the transaction is rolled back."""
    rejected: list[dict[str, Any]] = []
    try:
        with db.atomic() as session:
            postgresql = session.get_bind().dialect.name == "postgresql"
            for op in ops:
                try:
                    with session.begin_nested():
                        if postgresql:
                            _insert_postgresql(session, _encode_ops([op]), request, received)
                        else:
                            _insert_rows(session, _rows(request, [op], received))
                except DBAPIError as exc:
                    if classify(exc) is not Fault.PERMANENT:
                        raise
                    rejected.append(
                        {"seq": op.seq, "op_id": str(op.op_id),
                         "reason": f"the database refuses a value: {describe(exc)}"}
                    )
            raise _Discard
    except _Discard:
        pass
    return rejected


class _Discard(Exception):
    """Leaves a trial transaction by rolling it back."""


# A timestamp the server moves (a device clock off, a time in the future) keeps the value the
# device sent under ORIGINAL_TIMESTAMPS_KEY: the record as the tablet digested it for its audit
# trail is made of what was sent (sync.server.audit.device_row).


def _clamped(op: PushOp, received: datetime, threshold_s: float) -> PushOp:
    data, originals = clamp_future(op.data, received, threshold_s=threshold_s)
    if not originals:
        return op
    earlier = op.data.get(ORIGINAL_TIMESTAMPS_KEY)
    data[ORIGINAL_TIMESTAMPS_KEY] = {**originals, **(earlier if isinstance(earlier, dict) else {})}
    return op.model_copy(update={"data": data})


def _corrected(op: PushOp, offset: float, threshold_s: float) -> PushOp:
    data = correct_timestamps(op.data, offset, threshold_s=threshold_s)
    moved = {k: v for k, v in op.data.items() if data.get(k) != v}
    if moved:
        data[ORIGINAL_TIMESTAMPS_KEY] = moved
    data["_device_clock_offset_s"] = round(offset, 3)
    return op.model_copy(update={"data": data})


def _encode_ops(ops: Sequence[PushOp]) -> str:
    # ``data`` is encoded as the device sent it: a JSON dump by pydantic would turn a number
    # too large for a float into null, where the database should refuse it instead.
    return json.dumps(
        {"ops": [{**op.model_dump(mode="json", exclude={"data"}), "data": op.data}
                 for op in ops]},
        separators=(",", ":"),
    )


def _rows(request: PushRequest, ops: Sequence[PushOp], received: datetime) -> list[
    dict[str, Any]
]:
    return [
        {
            "device_id": request.device_id,
            "device_type": request.device_type,
            "app_version": op.app_version or request.app_version,
            "entity_type": op.entity_type,
            "entity_id": op.entity_id,
            "operation": op.operation,
            "data": op.data,
            "priority": op.priority,
            "retry_count": op.retry_count,
            "created_at": received,
            "op_id": op.op_id,
            "seq": op.seq,
            "device_created_at": op.created_at,
        }
        for op in ops
    ]


def _insert_rows(session: Session, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    statement = sqlite_insert(QUEUE).on_conflict_do_nothing().returning(QUEUE.c.op_id)
    result = session.execute(statement, rows)
    return {row[0] for row in result}


# One statement for the whole batch: the ops travel as one JSON document that PostgreSQL unpacks
# (json_to_recordset), so a batch of thousands costs one round trip and no per-row Python work.
# WITH ORDINALITY keeps the serial ids in the batch's order, which the processor follows.
_PG_INSERT = sa.text(
    "INSERT INTO tauri_sync_queue (device_id, device_type, app_version, entity_type, "
    "entity_id, operation, data, priority, retry_count, created_at, op_id, seq, "
    "device_created_at) "
    "SELECT :device_id, :device_type, coalesce(r.app_version, :app_version), r.entity_type, "
    "r.entity_id, r.operation, r.data, coalesce(r.priority, 0), coalesce(r.retry_count, 0), "
    ":received, r.op_id, r.seq, r.created_at "
    "FROM ROWS FROM (json_to_recordset(CAST(:doc AS json) -> 'ops') AS ("
    "entity_type text, entity_id uuid, operation text, data jsonb, priority int, "
    "retry_count int, op_id uuid, seq bigint, created_at timestamptz, app_version text"
    ")) WITH ORDINALITY AS r(entity_type, entity_id, operation, data, priority, retry_count, "
    "op_id, seq, created_at, app_version, ord) "
    "ORDER BY r.ord ON CONFLICT DO NOTHING RETURNING op_id"
)


def _insert_postgresql(
    session: Session, doc: str, request: PushRequest, received: datetime
) -> set[uuid.UUID]:
    result = session.execute(
        _PG_INSERT,
        {"doc": doc, "device_id": request.device_id, "device_type": request.device_type,
         "app_version": request.app_version, "received": received},
    )
    return {row[0] if isinstance(row[0], uuid.UUID) else uuid.UUID(str(row[0])) for row in result}


def _check_duplicates(
    session: Session, device_key: str, ops: Sequence[PushOp], inserted: set[uuid.UUID]
) -> int:
    """Count the operations already stored; refuse any that clash with another operation."""
    others = [op for op in ops if op.op_id not in inserted]
    if not others:
        return 0
    stored = {
        row.op_id: (row.device_id, row.seq)
        for row in session.execute(
            sa.select(QUEUE.c.op_id, QUEUE.c.device_id, QUEUE.c.seq).where(
                QUEUE.c.op_id.in_([op.op_id for op in others])
            )
        )
    }
    rejected = []
    for op in others:
        found = stored.get(op.op_id)
        if found is None:
            rejected.append(
                {"seq": op.seq, "op_id": str(op.op_id),
                 "reason": f"sequence {op.seq} is already used by another operation"}
            )
        elif found != (device_key, op.seq):
            rejected.append(
                {"seq": op.seq, "op_id": str(op.op_id),
                 "reason": "operation id already stored with another sequence or device"}
            )
    if rejected:
        raise OperationRejected(
            f"{len(rejected)} operation(s) clash with stored operations", rejected=rejected
        )
    return len(others)


def _advance_device(session: Session, device: DeviceIdentity, top: int, app_version: str) -> int:
    result = session.execute(
        sa.update(DEVICES)
        .where(DEVICES.c.id == device.id)
        .values(
            last_applied_seq=sa.case(
                (DEVICES.c.last_applied_seq < top, top), else_=DEVICES.c.last_applied_seq
            ),
            last_seen_at=utcnow(),
            app_version=app_version,
        )
        .returning(DEVICES.c.last_applied_seq)
    )
    value = result.scalar_one()
    return int(value)

"""The queue processor: applies ``tauri_sync_queue`` rows to the server's tables.

It claims due rows in the seed's order (``processed_at IS NULL ORDER BY priority DESC,
created_at ASC``, then the insertion order) with ``FOR UPDATE SKIP LOCKED``, so any number of
processors — threads of the server, processes of ``kensa-server run --workers``, or
``kensa-server process`` elsewhere — share the queue without taking the same row twice; on
PostgreSQL each device's rows go to one processor at a time (``DEVICE_LOCK_NS``), so they apply
in the order the device pushed them. Each row is applied and marked ``processed_at`` in the same
transaction. A row that did not apply is handled by ``sync.server.queue_policy``: one that waits
for something is kept with its error, its ``apply_attempts`` and a ``next_attempt_at`` after an
exponential backoff, and dead-lettered when the policy's attempts are spent; one that can never
apply is dead-lettered at once; one on another device's record is rejected. A row that left the
queue unapplied keeps its ``refusal`` marker and reason and gets the device's next
``refusal_seq``, so the device learns of it (``GET /sync/v1/conflicts``). A failing row never
blocks the rows behind it: it is not due again until its backoff has passed.

Foreign keys are deferred in the schema; the processor makes them immediate (PostgreSQL) so a
missing parent fails its own row's savepoint rather than the whole batch at COMMIT.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from schema import server as s
from schema.db import Database
from schema.types import utcnow
from sync.conflicts import Decision
from sync.errors import ApplyError, ApplyNever, NotOwner
from sync.server.apply import SPECS, MasterCache, Outcome, apply_row
from sync.server.db_faults import FOREIGN_KEY_VIOLATION, Fault, classify, describe, sqlstate
from sync.server.notify import Wakeup
from sync.server.queue_policy import (
    CONFLICT,
    DEAD_LETTER,
    DEFAULT_POLICY,
    REJECTED,
    Failure,
    RetryPolicy,
)

log = logging.getLogger(__name__)

QUEUE: sa.Table = s.TauriSyncQueue.__table__  # type: ignore[attr-defined]
# The reason a refused row keeps in ``last_error`` starts with its kind, for people reading it.
PREFIXES = {CONFLICT: "conflict: ", REJECTED: "rejected: ", DEAD_LETTER: "dead letter: "}
CONFLICT_PREFIX = PREFIXES[CONFLICT]
# Refusals are numbered per device under one transaction-scoped lock, so that numbering order is
# commit order and a device reading after a cursor never skips one still in flight.
REFUSAL_LOCK_ID = 0x6B656E7372  # "kensr"
ERROR_LIMIT = 2000


ApplyRow = Callable[[Session, Any, MasterCache], Outcome]


def _unexpected(exc: Exception) -> str:
    text = f"could not be applied: {type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:299] + "…"


class _Isolate(Exception):
    """The fast pass over a batch hit a database error: redo the batch row by row."""


@dataclass(frozen=True)
class _Refusal:
    row: Any
    kind: str
    reason: str


@dataclass(frozen=True)
class _Wait:
    row: Any
    error: str


def _claim(now: datetime, limit: int) -> sa.Select[Any]:
    return (
        sa.select(QUEUE)
        .where(
            QUEUE.c.processed_at.is_(None),
            sa.or_(QUEUE.c.next_attempt_at.is_(None), QUEUE.c.next_attempt_at <= now),
        )
        .order_by(QUEUE.c.priority.desc(), QUEUE.c.created_at.asc(), QUEUE.c.id.asc())
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


# PostgreSQL: the devices whose rows a processor may claim are those it holds this transaction-
# scoped lock for (namespace, hash of the device key), so one device's rows are applied by one
# processor at a time, in the order the device pushed them. Without it, two processors taking
# consecutive batches of one device's push would apply a child before its parent committed, and
# the child would wait out a backoff. Different devices still go to different processors.
DEVICE_LOCK_NS = 0x6B656E  # "ken"
# How many devices with due rows a claim looks at: enough to fill a batch from several devices.
DEVICE_CANDIDATES = 64

# The first devices, in key order, with a row due now. A DISTINCT over the pending rows read and
# sorted every pending row for each claim, so a claim slowed as the backlog grew (15 ms at 12,000
# rows, 43 ms at 60,000, and on with the backlog an outage leaves). Hopping from one device to
# the next on a partial index of pending rows that leads with device_id reads about one entry
# per device instead.
_DUE_DEVICES = sa.text(
    "WITH RECURSIVE due(device_id) AS ("
    " (SELECT device_id FROM tauri_sync_queue WHERE processed_at IS NULL"
    "  AND (next_attempt_at IS NULL OR next_attempt_at <= :now) ORDER BY device_id LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT q.device_id FROM tauri_sync_queue q WHERE q.processed_at IS NULL"
    "  AND q.device_id > due.device_id"
    "  AND (q.next_attempt_at IS NULL OR q.next_attempt_at <= :now)"
    "  ORDER BY q.device_id LIMIT 1)"
    " FROM due WHERE due.device_id IS NOT NULL"
    ") SELECT device_id FROM due WHERE device_id IS NOT NULL LIMIT :n"
)
# The first due rows of each device held, in the order they are applied, read off the partial
# index in that order (``idx_tauri_sync_queue_device_due``): the batch is the first ``n`` of
# those, which are the first ``n`` due rows of all these devices together. Then only those rows
# are locked (the claim below); taking the devices' rows whole read and sorted every pending row
# they had, for each batch.
_FIRST_DUE = sa.text(
    "SELECT r.id FROM unnest(CAST(:devices AS text[])) AS d(device_id) CROSS JOIN LATERAL ("
    " SELECT q.id, q.priority, q.created_at FROM tauri_sync_queue q"
    " WHERE q.device_id = d.device_id AND q.processed_at IS NULL"
    " AND (q.next_attempt_at IS NULL OR q.next_attempt_at <= :now)"
    " ORDER BY q.priority DESC, q.created_at, q.id LIMIT :n) AS r"
    " ORDER BY r.priority DESC, r.created_at, r.id LIMIT :n"
)
_LOCK_DEVICES = sa.text(
    "SELECT d FROM unnest(CAST(:devices AS text[])) AS d "
    "WHERE pg_try_advisory_xact_lock(:ns, hashtext(d))"
)


def _claim_rows(session: Session, now: datetime, limit: int) -> list[Any]:
    if session.get_bind().dialect.name != "postgresql":
        return list(session.execute(_claim(now, limit)).all())
    due = [str(d) for d in session.execute(
        _DUE_DEVICES, {"now": now, "n": DEVICE_CANDIDATES}).scalars()]
    if not due:
        return []
    mine = [str(d) for d in session.execute(
        _LOCK_DEVICES, {"devices": due, "ns": DEVICE_LOCK_NS}).scalars()]
    if not mine:
        return []  # every device with due rows is being applied by another processor
    ids = list(session.execute(_FIRST_DUE, {"devices": mine, "now": now, "n": limit}).scalars())
    if not ids:
        return []
    # Locked by primary key alone: with "pending" in the WHERE the planner, on statistics a
    # burst of pushes has left behind, read every pending row through the partial index and
    # filtered out all but these. A locked row comes back as it now is, so one applied meanwhile
    # is left out here.
    locked = session.execute(
        sa.select(QUEUE).where(QUEUE.c.id.in_(ids))
        .order_by(QUEUE.c.priority.desc(), QUEUE.c.created_at.asc(), QUEUE.c.id.asc())
        .with_for_update(skip_locked=True)
    ).all()
    return [r for r in locked if r.processed_at is None
            and (r.next_attempt_at is None or r.next_attempt_at <= now)]


def _database_failure(exc: BaseException) -> Failure:
    """A value or constraint the database refuses fails the same way every time — except a
    missing parent, which may yet arrive."""
    if sqlstate(exc) == FOREIGN_KEY_VIOLATION or "FOREIGN KEY constraint failed" in str(exc):
        return Failure.LATER
    return Failure.NEVER if classify(exc) is Fault.PERMANENT else Failure.LATER


class QueueProcessor:
    def __init__(
        self,
        db: Database,
        *,
        batch: int = 200,
        retry_s: float = DEFAULT_POLICY.base_s,
        policy: RetryPolicy | None = None,
        apply: ApplyRow = apply_row,
    ) -> None:
        """``apply`` applies one row (``sync.server.apply.apply_row``); a test hands in one
        that fails as no rule foresaw."""
        self.db = db
        self.batch = batch
        self._apply = apply
        self.policy = policy or RetryPolicy(
            base_s=retry_s,
            cap_s=max(retry_s, DEFAULT_POLICY.cap_s),
            max_attempts=DEFAULT_POLICY.max_attempts,
        )
        self.cache = MasterCache()

    def process_once(self) -> int:
        """Claim and apply one batch; returns how many rows were claimed."""
        try:
            try:
                return self._process(self.batch, isolate=False)
            except _Isolate:
                # A statement failed and took the fast batch down: redo it with a savepoint
                # around each row, so the one bad row is kept with its error and the rest apply.
                return self._process(self.batch, isolate=True)
        except SQLAlchemyError as exc:
            if classify(exc) is Fault.TRANSIENT:
                raise
            # A deferred check failing at COMMIT (SQLite) takes the whole batch down: go row by
            # row so the one bad row is singled out and the others still apply.
            log.warning("queue batch failed at commit (%s); applying row by row", exc)
            done = 0
            for _ in range(self.batch):
                try:
                    claimed = self._process(1, isolate=True)
                except SQLAlchemyError as row_exc:
                    if classify(row_exc) is Fault.TRANSIENT:
                        raise
                    self._record_failure_of_head(row_exc)
                    claimed = 1
                if not claimed:
                    break
                done += claimed
            return done

    def _process(self, limit: int, *, isolate: bool) -> int:
        with self.db.atomic() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(sa.text("SET CONSTRAINTS ALL IMMEDIATE"))
            now = utcnow()
            rows = _claim_rows(session, now, limit)
            self.cache.new_batch()
            applied: list[int] = []
            refused: list[_Refusal] = []
            waiting: list[_Wait] = []
            for row in rows:
                try:
                    if isolate:
                        with session.begin_nested():
                            outcome = self._apply(session, row, self.cache)
                    else:
                        # apply_row raises ApplyError only before its first write, so without
                        # a savepoint a refused row still leaves nothing behind.
                        outcome = self._apply(session, row, self.cache)
                except NotOwner as exc:
                    log.warning(
                        "device %s: %s %s %s refused: %s", row.device_id, row.operation,
                        row.entity_type, row.entity_id, exc.message,
                    )
                    refused.append(_Refusal(row, REJECTED, exc.message))
                    continue
                except ApplyNever as exc:
                    refused.append(_Refusal(row, DEAD_LETTER, exc.message))
                    continue
                except ApplyError as exc:
                    # ApplyLater, or any other reason to wait: the policy decides how long.
                    waiting.append(_Wait(row, exc.message))
                    continue
                except SQLAlchemyError as exc:
                    if not isolate:
                        raise _Isolate from exc
                    if classify(exc) is Fault.TRANSIENT:
                        raise
                    self._forget(row)
                    self.cache.rolled_back()
                    error = f"{type(exc).__name__}: {describe(exc)}"
                    if _database_failure(exc) is Failure.NEVER:
                        refused.append(_Refusal(row, DEAD_LETTER, error))
                    else:
                        waiting.append(_Wait(row, error))
                    continue
                except Exception as exc:
                    # A value no check foresaw made the apply itself fail. Left to the loop, the
                    # batch would roll back and be claimed again for ever, with every other
                    # device's rows in it: the row is set aside with what went wrong instead.
                    if not isolate:
                        raise _Isolate from exc
                    log.exception(
                        "queue row %s: %s %s %s could not be applied", row.id, row.operation,
                        row.entity_type, row.entity_id,
                    )
                    self._forget(row)
                    self.cache.rolled_back()
                    refused.append(_Refusal(row, DEAD_LETTER, _unexpected(exc)))
                    continue
                if outcome.decision is Decision.CONFLICT:
                    note = outcome.note or "version conflict"
                    log.info("queue row %s: conflict: %s", row.id, note)
                    refused.append(_Refusal(row, CONFLICT, note))
                else:
                    applied.append(row.id)
            # The audit entries kept above are judged now, in this transaction.
            self.cache.entries.finish(session)
            if applied:
                session.execute(
                    sa.update(QUEUE).where(QUEUE.c.id.in_(applied))
                    .values(processed_at=now, last_error=None, next_attempt_at=None)
                )
            for wait in waiting:
                refusal = self._wait_or_give_up(session, wait, now)
                if refusal is not None:
                    refused.append(refusal)
            _refuse(session, refused, now)
            return len(rows)

    def _forget(self, row: Any) -> None:
        spec = SPECS.get(row.entity_type)
        if spec is not None:
            self.cache.forget(spec.table, row.entity_id)

    def _wait_or_give_up(self, session: Session, wait: _Wait, now: datetime) -> _Refusal | None:
        attempts = int(wait.row.apply_attempts) + 1
        step = self.policy.after_failure(attempts, Failure.LATER)
        if step.dead_letter:
            log.warning("queue row %s dead-lettered after %d attempts: %s",
                        wait.row.id, attempts, wait.error)
            return _Refusal(wait.row, DEAD_LETTER,
                            f"gave up after {attempts} attempts: {wait.error}")
        session.execute(
            sa.update(QUEUE).where(QUEUE.c.id == wait.row.id).values(
                apply_attempts=attempts, last_retry_at=now,
                next_attempt_at=now + timedelta(seconds=step.delay_s),
                last_error=wait.error[:ERROR_LIMIT],
            )
        )
        return None

    def _record_failure_of_head(self, exc: SQLAlchemyError) -> None:
        error = f"{type(exc).__name__}: {describe(exc)}"
        with self.db.atomic() as session:
            now = utcnow()
            row = session.execute(_claim(now, 1)).first()
            if row is None:
                return
            if _database_failure(exc) is Failure.NEVER:
                _refuse(session, [_Refusal(row, DEAD_LETTER, error)], now)
                return
            refusal = self._wait_or_give_up(session, _Wait(row, error), now)
            if refusal is not None:
                _refuse(session, [refusal], now)

    def drain(self, max_rounds: int = 1_000_000) -> int:
        """Process until nothing is claimable right now (tests, ``kensa-server process --once``)."""
        total = 0
        for _ in range(max_rounds):
            claimed = self.process_once()
            total += claimed
            if claimed == 0:
                break
        return total

    def run(self, stop: threading.Event, idle_s: float = 0.5,
            wakeup: Wakeup | None = None) -> None:
        """Apply batches until ``stop``. Between batches, with ``wakeup`` (PostgreSQL), sleep
        until a push's notification, the next row whose backoff ends, or the poll interval;
        without it, poll every ``idle_s``."""
        if wakeup is not None:
            # Listening before the first claim: a push committed in between still wakes us.
            wakeup.listen()
        try:
            while not stop.is_set():
                try:
                    claimed = self.process_once()
                except Exception:
                    log.exception("queue processor failed; retrying")
                    claimed = 0
                    stop.wait(idle_s)
                if claimed:
                    continue
                if wakeup is None:
                    stop.wait(idle_s)
                    continue
                wakeup.wait(stop, self._until_next_due(wakeup.poll_s))
        finally:
            if wakeup is not None:
                wakeup.close()

    def _until_next_due(self, poll_s: float) -> float:
        """Seconds until the earliest row waiting out its backoff is due, at most ``poll_s``."""
        try:
            with self.db.read() as session:
                due = session.execute(
                    sa.select(sa.func.min(QUEUE.c.next_attempt_at))
                    .where(QUEUE.c.processed_at.is_(None))
                ).scalar()
        except SQLAlchemyError:
            return poll_s
        if due is None:
            return poll_s
        if due.tzinfo is None:  # SQLite hands timestamps back without their zone (UTC)
            due = due.replace(tzinfo=UTC)
        return float(max(0.0, min(poll_s, (due - utcnow()).total_seconds())))


def _refuse(session: Session, refusals: list[_Refusal], now: datetime) -> None:
    """Take the rows out of the queue with their marker, reason and the device's next number."""
    if not refusals:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": REFUSAL_LOCK_ID})
    following: dict[str, int] = {}
    for refusal in refusals:
        device = refusal.row.device_id
        if device not in following:
            top = session.execute(
                sa.select(sa.func.max(QUEUE.c.refusal_seq)).where(QUEUE.c.device_id == device)
            ).scalar_one()
            following[device] = int(top or 0)
        following[device] += 1
        reason = PREFIXES[refusal.kind] + refusal.reason
        session.execute(
            sa.update(QUEUE).where(QUEUE.c.id == refusal.row.id).values(
                processed_at=now, refusal=refusal.kind, refusal_seq=following[device],
                apply_attempts=QUEUE.c.apply_attempts + 1, last_retry_at=now,
                next_attempt_at=None, last_error=reason[:ERROR_LIMIT],
            )
        )


def pending_count(db: Database) -> int:
    with db.read() as session:
        value = session.execute(
            sa.select(sa.func.count()).select_from(QUEUE).where(QUEUE.c.processed_at.is_(None))
        ).scalar_one()
    return int(value)

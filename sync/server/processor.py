"""The queue processor: applies ``tauri_sync_queue`` rows to the server's tables.

It claims unprocessed rows in the seed's order (``processed_at IS NULL ORDER BY priority DESC,
created_at ASC``, then the insertion order) with ``FOR UPDATE SKIP LOCKED``, so any number of
processors — threads of the server, or ``kensa server process`` elsewhere — share the queue
without taking the same row twice. Each row is applied in a savepoint and marked
``processed_at`` in the same transaction; a row that cannot apply is rolled back to its savepoint
and kept with its error, ``retry_count`` and ``last_retry_at``, to be tried again after
``retry_s`` — never lost, never blocking the rows behind it.

Foreign keys are deferred in the schema; the processor makes them immediate (PostgreSQL) so a
missing parent fails its own row's savepoint rather than the whole batch at COMMIT.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from schema import server as s
from schema.db import Database
from schema.types import utcnow
from sync.conflicts import Decision
from sync.server.apply import ApplyError, MasterCache, apply_row

log = logging.getLogger(__name__)

QUEUE: sa.Table = s.TauriSyncQueue.__table__  # type: ignore[attr-defined]
CONFLICT_PREFIX = "conflict: "


class _Isolate(Exception):
    """The fast pass over a batch hit a database error: redo the batch row by row."""


def _claim(retry_s: float, limit: int) -> sa.Select[Any]:
    due = utcnow() - timedelta(seconds=retry_s)
    return (
        sa.select(QUEUE)
        .where(
            QUEUE.c.processed_at.is_(None),
            sa.or_(QUEUE.c.last_retry_at.is_(None), QUEUE.c.last_retry_at < due),
        )
        .order_by(QUEUE.c.priority.desc(), QUEUE.c.created_at.asc(), QUEUE.c.id.asc())
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


class QueueProcessor:
    def __init__(self, db: Database, *, batch: int = 200, retry_s: float = 2.0) -> None:
        self.db = db
        self.batch = batch
        self.retry_s = retry_s
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
            # A deferred check failing at COMMIT (SQLite) takes the whole batch down: go row by
            # row so the one bad row is singled out and the others still apply.
            log.warning("queue batch failed at commit (%s); applying row by row", exc)
            done = 0
            for _ in range(self.batch):
                try:
                    claimed = self._process(1, isolate=True)
                except SQLAlchemyError as row_exc:
                    self._record_failure_of_head(str(row_exc))
                    claimed = 1
                if not claimed:
                    break
                done += claimed
            return done

    def _process(self, limit: int, *, isolate: bool) -> int:
        with self.db.atomic() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(sa.text("SET CONSTRAINTS ALL IMMEDIATE"))
            rows = session.execute(_claim(self.retry_s, limit)).all()
            self.cache.new_batch()
            now = utcnow()
            applied: list[int] = []
            noted: list[tuple[int, str]] = []
            failed: list[tuple[int, str]] = []
            for row in rows:
                try:
                    if isolate:
                        with session.begin_nested():
                            outcome = apply_row(session, row, self.cache)
                    else:
                        # apply_row raises ApplyError only before its first write, so without
                        # a savepoint a refused row still leaves nothing behind.
                        outcome = apply_row(session, row, self.cache)
                except ApplyError as exc:
                    failed.append((row.id, str(exc)))
                    continue
                except SQLAlchemyError as exc:
                    if not isolate:
                        raise _Isolate from exc
                    failed.append((row.id, f"{type(exc).__name__}: {getattr(exc, 'orig', exc)}"))
                    continue
                if outcome.decision is Decision.CONFLICT:
                    note = CONFLICT_PREFIX + (outcome.note or "version conflict")
                    log.info("queue row %s: %s", row.id, note)
                    noted.append((row.id, note))
                else:
                    applied.append(row.id)
            if applied:
                session.execute(
                    sa.update(QUEUE).where(QUEUE.c.id.in_(applied))
                    .values(processed_at=now, last_error=None)
                )
            for row_id, note in noted:
                session.execute(
                    sa.update(QUEUE).where(QUEUE.c.id == row_id)
                    .values(processed_at=now, last_error=note)
                )
            for row_id, error in failed:
                session.execute(
                    sa.update(QUEUE)
                    .where(QUEUE.c.id == row_id)
                    .values(retry_count=QUEUE.c.retry_count + 1, last_retry_at=now,
                            last_error=error[:2000])
                )
            return len(rows)

    def _record_failure_of_head(self, error: str) -> None:
        with self.db.atomic() as session:
            row = session.execute(_claim(self.retry_s, 1)).first()
            if row is None:
                return
            session.execute(
                sa.update(QUEUE)
                .where(QUEUE.c.id == row.id)
                .values(retry_count=QUEUE.c.retry_count + 1, last_retry_at=utcnow(),
                        last_error=error[:2000])
            )

    def drain(self, max_rounds: int = 1_000_000) -> int:
        """Process until nothing is claimable right now (tests, ``kensa server process --once``)."""
        total = 0
        for _ in range(max_rounds):
            claimed = self.process_once()
            total += claimed
            if claimed == 0:
                break
        return total

    def run(self, stop: threading.Event, idle_s: float = 0.5) -> None:
        while not stop.is_set():
            try:
                claimed = self.process_once()
            except Exception:
                log.exception("queue processor failed; retrying")
                claimed = 0
            if claimed == 0:
                stop.wait(idle_s)


def pending_count(db: Database) -> int:
    with db.read() as session:
        value = session.execute(
            sa.select(sa.func.count()).select_from(QUEUE).where(QUEUE.c.processed_at.is_(None))
        ).scalar_one()
    return int(value)

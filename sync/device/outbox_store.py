"""The device's ``outbox`` table as the push batcher's ``OutboxSource``.

Reads return the ``data`` column's JSON text untouched: the push body is assembled from it
without decoding and re-encoding every payload. Each write is its own short transaction, so the
sidecar's own writes are never held up for long.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from schema.db import Database
from schema.types import utcnow
from sync.batching import PendingOp
from sync.device.acks import RECORD_RECEIVED

_CHUNK = 500  # well under SQLite's bound-parameter limit

# (priority DESC, seq ASC) mixes directions, which the (priority, seq) index cannot serve in one
# scan: SQLite would sort the whole outbox for every batch. Priorities are few, so the rows are
# read one priority at a time, each an index range in seq order.
_PRIORITIES = sa.text(
    "SELECT DISTINCT priority FROM outbox ORDER BY priority DESC"
)
_READ = sa.text(
    "SELECT seq, op_id, entity_type, entity_id, operation, data, priority, retry_count, "
    "created_at FROM outbox WHERE priority = :priority AND set_aside_at IS NULL "
    "ORDER BY seq ASC LIMIT :limit"
)


def sqlite_time(value: datetime) -> str:
    # UTCDateTime stores naive UTC text in SQLite; raw statements must write the same shape.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _iso_utc(value: str | None) -> str | None:
    if not value:
        return None
    text = value.replace(" ", "T")
    return text if ("+" in text[10:] or text.endswith("Z")) else text + "+00:00"


@dataclass(frozen=True)
class SetAside:
    seq: int
    op_id: str
    entity_type: str
    entity_id: str
    operation: str
    reason: str | None
    set_aside_at: str | None


@dataclass(frozen=True)
class PendingStats:
    rows: int
    bytes: int
    oldest_created_at: str | None


class SqliteOutbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    def read_pending(self, limit: int) -> list[PendingOp]:
        rows: list[Any] = []
        with self.db.read() as session:
            for (priority,) in session.execute(_PRIORITIES).all():
                rows += session.execute(
                    _READ, {"priority": priority, "limit": limit - len(rows)}
                ).all()
                if len(rows) >= limit:
                    break
        return [
            PendingOp(
                seq=row.seq, op_id=row.op_id, entity_type=row.entity_type,
                entity_id=row.entity_id, operation=row.operation,
                data=row.data if isinstance(row.data, str) else json.dumps(row.data),
                priority=row.priority, retry_count=row.retry_count,
                created_at=_iso_utc(row.created_at),
            )
            for row in rows
        ]

    def delete(self, seqs: Sequence[int]) -> None:
        """Forget rows the server has stored, noting how far each inspection got in the same
        transaction (``sync.device.acks``)."""
        with self.db.atomic() as session:
            for start in range(0, len(seqs), _CHUNK):
                part = list(seqs[start : start + _CHUNK])
                session.execute(
                    sa.text(RECORD_RECEIVED).bindparams(sa.bindparam("seqs", expanding=True)),
                    {"seqs": part},
                )
                session.execute(
                    sa.text("DELETE FROM outbox WHERE seq IN :seqs").bindparams(
                        sa.bindparam("seqs", expanding=True)
                    ),
                    {"seqs": part},
                )

    def mark_attempt(self, seqs: Sequence[int]) -> None:
        now = sqlite_time(utcnow())
        with self.db.atomic() as session:
            for start in range(0, len(seqs), _CHUNK):
                part = list(seqs[start : start + _CHUNK])
                session.execute(
                    sa.text(
                        "UPDATE outbox SET retry_count = retry_count + 1, last_retry_at = :now "
                        "WHERE seq IN :seqs"
                    ).bindparams(sa.bindparam("seqs", expanding=True)),
                    {"seqs": part, "now": now},
                )

    def set_aside(self, seq: int, reason: str) -> None:
        with self.db.atomic() as session:
            session.execute(
                sa.text(
                    "UPDATE outbox SET set_aside_at = :now, set_aside_reason = :reason "
                    "WHERE seq = :seq"
                ),
                {"now": sqlite_time(utcnow()), "reason": reason[:2000], "seq": seq},
            )

    def release(self, seq: int) -> bool:
        """Put a set-aside operation back in the queue (after the cause was fixed)."""
        with self.db.atomic() as session:
            result = session.execute(
                sa.text(
                    "UPDATE outbox SET set_aside_at = NULL, set_aside_reason = NULL "
                    "WHERE seq = :seq AND set_aside_at IS NOT NULL"
                ),
                {"seq": seq},
            )
            return bool(getattr(result, "rowcount", 0))

    def stats(self) -> PendingStats:
        with self.db.read() as session:
            row = session.execute(
                sa.text(
                    "SELECT count(*), coalesce(sum(length(data)), 0), min(created_at) "
                    "FROM outbox WHERE set_aside_at IS NULL"
                )
            ).one()
        return PendingStats(
            rows=int(row[0]), bytes=int(row[1]), oldest_created_at=_iso_utc(row[2])
        )

    def set_aside_rows(self, limit: int = 100) -> list[SetAside]:
        with self.db.read() as session:
            rows = session.execute(
                sa.text(
                    "SELECT seq, op_id, entity_type, entity_id, operation, set_aside_reason, "
                    "set_aside_at FROM outbox WHERE set_aside_at IS NOT NULL "
                    "ORDER BY seq LIMIT :limit"
                ),
                {"limit": limit},
            ).all()
        return [
            SetAside(seq=r[0], op_id=r[1], entity_type=r[2], entity_id=r[3], operation=r[4],
                     reason=r[5], set_aside_at=_iso_utc(r[6]))
            for r in rows
        ]

    def pending_entity_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of these entities have operations still waiting to be pushed."""
        found: set[str] = set()
        if not ids:
            return found
        with self.db.read() as session:
            for start in range(0, len(ids), _CHUNK):
                part = list(ids[start : start + _CHUNK])
                rows = session.execute(
                    sa.text(
                        "SELECT DISTINCT entity_id FROM outbox "
                        "WHERE set_aside_at IS NULL AND entity_id IN :ids"
                    ).bindparams(sa.bindparam("ids", expanding=True)),
                    {"ids": part},
                )
                found.update(r[0] for r in rows)
        return found

    def bump_sequence(self, at_least: int) -> None:
        """Make the next ``seq`` larger than ``at_least`` (a reinstalled device reusing its
        registration must not reuse sequence numbers the server already holds)."""
        with self.db.atomic() as session:
            current = session.execute(
                sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")
            ).first()
            top = session.execute(sa.text("SELECT coalesce(max(seq), 0) FROM outbox")).scalar()
            if current is None:
                if at_least > int(top or 0):
                    session.execute(
                        sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', :n)"),
                        {"n": at_least},
                    )
            elif int(current[0]) < at_least:
                session.execute(
                    sa.text("UPDATE sqlite_sequence SET seq = :n WHERE name = 'outbox'"),
                    {"n": at_least},
                )

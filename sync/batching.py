"""The push batching contract, after PowerSync's CRUD batches.

``next_batch(limit)`` reads ``limit + 1`` pending operations so it knows ``has_more`` without a
second query; ``complete(batch, through_seq)`` deletes the batch's entries up to and including
the one with ``through_seq`` — only after the server's answer names that sequence as applied.

The push order is ``(priority DESC, seq ASC)``, so a batch's sequence numbers are not a range of
the outbox: a high-priority row with seq 90 may travel before a normal one with seq 12. That is
why ``complete`` works on the batch it handed out (its *prefix*), never on "every row with
seq <= N": the latter would delete rows that were never sent.

If the head of the queue does not move across ``stall_warning_after`` attempts, a warning is
logged once per streak, so a stuck first entry is noticed instead of silently holding everything.

Pure: the store behind it is an ``OutboxSource``; nothing here knows SQLite or HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingOp:
    """One outbox row as it is pushed. ``data`` is the JSON text, passed through untouched."""

    seq: int
    op_id: str
    entity_type: str
    entity_id: str
    operation: str
    data: str
    priority: int
    retry_count: int
    created_at: str | None = None


class OutboxSource(Protocol):
    def read_pending(self, limit: int) -> list[PendingOp]:
        """Up to ``limit`` operations not set aside, in ``(priority DESC, seq ASC)`` order."""
        ...

    def delete(self, seqs: Sequence[int]) -> None: ...

    def mark_attempt(self, seqs: Sequence[int]) -> None:
        """Count a failed attempt on these rows (``retry_count``, ``last_retry_at``)."""
        ...

    def set_aside(self, seq: int, reason: str) -> None: ...


@dataclass(frozen=True)
class Batch:
    entries: tuple[PendingOp, ...]
    has_more: bool

    @property
    def first_seq(self) -> int:
        return self.entries[0].seq

    @property
    def seqs(self) -> list[int]:
        return [entry.seq for entry in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def prefix_through(self, through_seq: int) -> tuple[PendingOp, ...]:
        for index, entry in enumerate(self.entries):
            if entry.seq == through_seq:
                return self.entries[: index + 1]
        raise ValueError(f"sequence {through_seq} is not in this batch")


class PushBatcher:
    def __init__(self, source: OutboxSource, *, stall_warning_after: int = 10) -> None:
        self.source = source
        self.stall_warning_after = stall_warning_after
        self._head: int | None = None
        self._head_attempts = 0

    def next_batch(self, limit: int) -> Batch | None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        rows = self.source.read_pending(limit + 1)
        if not rows:
            self._head, self._head_attempts = None, 0
            return None
        self._watch_head(rows[0])
        return Batch(entries=tuple(rows[:limit]), has_more=len(rows) > limit)

    def _watch_head(self, head: PendingOp) -> None:
        if head.seq != self._head:
            self._head, self._head_attempts = head.seq, 0
        self._head_attempts += 1
        if self._head_attempts == self.stall_warning_after:
            log.warning(
                "outbox head has not moved in %d attempts: seq=%d %s %s %s (retry_count=%d)",
                self._head_attempts,
                head.seq,
                head.operation,
                head.entity_type,
                head.entity_id,
                head.retry_count,
            )

    @property
    def head_attempts(self) -> int:
        return self._head_attempts

    def complete(self, batch: Batch, through_seq: int) -> int:
        """Delete the batch's prefix through ``through_seq``; returns how many rows went."""
        done = batch.prefix_through(through_seq)
        self.source.delete([entry.seq for entry in done])
        return len(done)

    def failed(self, batch: Batch) -> None:
        self.source.mark_attempt(batch.seqs)

    def set_aside(self, entry: PendingOp, reason: str) -> None:
        log.warning(
            "setting aside seq=%d %s %s %s: %s",
            entry.seq,
            entry.operation,
            entry.entity_type,
            entry.entity_id,
            reason,
        )
        self.source.set_aside(entry.seq, reason)


def find_entry(batch: Batch, *, seq: Any = None, op_id: Any = None) -> PendingOp | None:
    """The batch entry a server error names, by sequence or operation id."""
    for entry in batch.entries:
        if (seq is not None and entry.seq == seq) or (op_id is not None and entry.op_id == op_id):
            return entry
    return None

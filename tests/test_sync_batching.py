"""The push batching contract, against an in-memory outbox and against the real SQLite one."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import pytest
from sqlmodel import select

from schema import device as d
from schema.db import Database
from sync.batching import Batch, PendingOp, PushBatcher, find_entry
from sync.device.outbox_store import SqliteOutbox
from sync.device.push import build_body


def op(seq: int, priority: int = 0) -> PendingOp:
    return PendingOp(seq=seq, op_id=f"op-{seq}", entity_type="inspection_session",
                     entity_id=f"e-{seq}", operation="INSERT", data='{"a": 1}',
                     priority=priority, retry_count=0)


class MemoryOutbox:
    def __init__(self, ops: list[PendingOp]) -> None:
        self.ops = {o.seq: o for o in ops}
        self.aside: dict[int, str] = {}
        self.attempts: dict[int, int] = {}
        self.reads: list[int] = []

    def read_pending(self, limit: int) -> list[PendingOp]:
        self.reads.append(limit)
        live = [o for o in self.ops.values() if o.seq not in self.aside]
        return sorted(live, key=lambda o: (-o.priority, o.seq))[:limit]

    def delete(self, seqs: Sequence[int]) -> None:
        for seq in seqs:
            del self.ops[seq]

    def mark_attempt(self, seqs: Sequence[int]) -> None:
        for seq in seqs:
            self.attempts[seq] = self.attempts.get(seq, 0) + 1

    def set_aside(self, seq: int, reason: str) -> None:
        self.aside[seq] = reason


@pytest.mark.parametrize(
    ("rows", "limit", "seqs", "has_more"),
    [
        (0, 10, None, None),
        (3, 10, [1, 2, 3], False),
        (10, 10, list(range(1, 11)), False),
        (11, 10, list(range(1, 11)), True),
        (25, 1, [1], True),
    ],
)
def test_next_batch_reads_one_more_to_know_has_more(
    rows: int, limit: int, seqs: list[int] | None, has_more: bool | None
) -> None:
    source = MemoryOutbox([op(i) for i in range(1, rows + 1)])
    batch = PushBatcher(source).next_batch(limit)
    assert source.reads == [limit + 1]
    if seqs is None:
        assert batch is None
    else:
        assert batch is not None and batch.seqs == seqs and batch.has_more is has_more


def test_order_is_priority_first_then_sequence() -> None:
    source = MemoryOutbox([op(1), op(2, priority=5), op(3), op(4, priority=5), op(5, 1)])
    batch = PushBatcher(source).next_batch(10)
    assert batch is not None and batch.seqs == [2, 4, 5, 1, 3]


def test_complete_deletes_the_batch_prefix_never_unsent_rows() -> None:
    # seq 7 (normal priority) is not in the batch although 9 (high) is: "every seq <= 9"
    # would wrongly delete it.
    source = MemoryOutbox([op(9, priority=1), op(3), op(5), op(7)])
    batcher = PushBatcher(source)
    batch = batcher.next_batch(3)
    assert batch is not None and batch.seqs == [9, 3, 5]
    assert batcher.complete(batch, 3) == 2
    assert sorted(source.ops) == [5, 7]


def test_complete_with_a_sequence_not_in_the_batch_deletes_nothing() -> None:
    source = MemoryOutbox([op(1), op(2)])
    batcher = PushBatcher(source)
    batch = batcher.next_batch(10)
    assert batch is not None
    with pytest.raises(ValueError):
        batcher.complete(batch, 99)
    assert sorted(source.ops) == [1, 2]


def test_failed_counts_attempts_and_set_aside_skips_the_row() -> None:
    source = MemoryOutbox([op(1), op(2)])
    batcher = PushBatcher(source)
    batch = batcher.next_batch(10)
    assert batch is not None
    batcher.failed(batch)
    assert source.attempts == {1: 1, 2: 1}
    batcher.set_aside(batch.entries[0], "bad entity")
    again = batcher.next_batch(10)
    assert again is not None and again.seqs == [2]


def test_a_head_that_never_moves_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    source = MemoryOutbox([op(1), op(2)])
    batcher = PushBatcher(source, stall_warning_after=3)
    with caplog.at_level(logging.WARNING, logger="sync.batching"):
        for _ in range(6):
            batcher.next_batch(10)
    stalls = [r for r in caplog.records if "has not moved" in r.getMessage()]
    assert len(stalls) == 1 and "seq=1" in stalls[0].getMessage()
    batch = batcher.next_batch(10)
    assert batch is not None
    batcher.complete(batch, 1)
    batcher.next_batch(10)
    assert batcher.head_attempts == 1


def test_find_entry_by_seq_or_op_id() -> None:
    batch = Batch(entries=(op(4), op(8)), has_more=False)
    assert find_entry(batch, seq=8) == op(8)
    assert find_entry(batch, op_id="op-4") == op(4)
    assert find_entry(batch, seq=5) is None


def test_body_splices_stored_json_untouched() -> None:
    entry = PendingOp(seq=3, op_id="o", entity_type="inspection_session", entity_id="e",
                      operation="UPDATE", data='{"status":"completed","base_version":1}',
                      priority=2, retry_count=4, created_at="2026-11-27T08:00:00+00:00")
    body = json.loads(build_body(Batch((entry,), False), "dev", "tablet", "0.1.0"))
    assert body == {
        "device_id": "dev", "device_type": "tablet", "app_version": "0.1.0",
        "ops": [{"seq": 3, "op_id": "o", "entity_type": "inspection_session",
                 "entity_id": "e", "operation": "UPDATE", "priority": 2, "retry_count": 4,
                 "created_at": "2026-11-27T08:00:00+00:00",
                 "data": {"status": "completed", "base_version": 1}}],
    }


def _add(db: Database, n: int, priority: int = 0) -> None:
    with db.atomic() as session:
        for i in range(n):
            session.add(d.Outbox(entity_type="inspection_session", entity_id=f"e{i}",
                                 operation="INSERT", data={"i": i}, priority=priority))


def test_sqlite_outbox_honours_the_contract(device_db: Database) -> None:
    _add(device_db, 5)
    _add(device_db, 2, priority=3)
    outbox = SqliteOutbox(device_db)
    batcher = PushBatcher(outbox)
    batch = batcher.next_batch(4)
    assert batch is not None and batch.seqs == [6, 7, 1, 2] and batch.has_more
    assert json.loads(batch.entries[2].data) == {"i": 0}
    batcher.failed(batch)
    batcher.set_aside(batch.entries[3], "refused: reason")
    assert batcher.complete(batch, 7) == 2
    assert outbox.stats().rows == 4  # 1, 3, 4, 5 (2 is set aside)
    aside = outbox.set_aside_rows()
    assert [(a.seq, a.reason) for a in aside] == [(2, "refused: reason")]
    with device_db.read() as session:
        row = session.get(d.Outbox, 1)
        assert row is not None and row.retry_count == 1 and row.last_retry_at is not None
    assert outbox.release(2) and outbox.stats().rows == 5
    assert outbox.pending_entity_ids(["e0", "e9", "e4"]) == {"e0", "e4"}


def test_bump_sequence_moves_future_sequence_numbers(device_db: Database) -> None:
    outbox = SqliteOutbox(device_db)
    outbox.bump_sequence(500)
    _add(device_db, 1)
    batch = PushBatcher(outbox).next_batch(1)
    assert batch is not None and batch.seqs == [501]
    outbox.bump_sequence(10)  # never backwards
    _add(device_db, 1)
    with device_db.read() as session:
        assert max(r.seq or 0 for r in session.exec(select(d.Outbox))) == 502

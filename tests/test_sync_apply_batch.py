"""The queue processor applies a claimed batch in one transaction and reads once what the batch
repeats (the chain's lock, users, owners, current versions): on the real PostgreSQL, the verdicts
and attributions are those of applying row by row, for a few statements per row."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import sqlalchemy as sa

from schema.db import Database
from schema.formats import audit as fmt
from sync.server import masters
from sync.server.processor import QueueProcessor
from tests.support.sync_harness import Site
from tests.test_audit_server import Tablet, chain_state, rows, site, tablet

__all__ = ["site", "tablet"]  # the fixtures, shared with the audit tests


def _drain_counting(db: Database) -> Counter[str]:
    ran: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        ran[statement.split(None, 1)[0].upper()] += 1

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        QueueProcessor(db, retry_s=0.0).drain()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    return ran


def test_a_batch_of_inspections_applies_as_row_by_row_for_few_statements(
    site: tuple[Site, Database, str], tablet: Tablet
) -> None:
    seeded, db, _ = site
    with db.atomic() as session:
        device, _ = masters.add_device(session, "TAB-03")
    seeded.device_ids["TAB-03"] = str(device.id)
    tablets = [tablet, Tablet(seeded, db, "TAB-03")]
    inspections = 8
    for each in tablets:
        ops = [op for _ in range(inspections) for op in each.inspection()[0]]
        each.push(ops)
    pushed = 2 * inspections * 12
    ran = _drain_counting(db)
    assert rows(db, "SELECT count(*) AS n FROM tauri_sync_queue "
                    "WHERE processed_at IS NULL OR refusal IS NOT NULL")[0].n == 0
    for each in tablets:
        state = chain_state(db, each)
        assert (state.status, state.last_seq, state.last_hash) == (
            "ok", inspections * 6, each.entries[-1]["hash"])
    # Who acted comes from each change's entry: tanaka, but nobody for the job runner's result.
    tanaka = rows(db, "SELECT id FROM users WHERE username = 'tanaka'")[0].id
    for table in ("inspection_targets", "inspection_sessions", "inspection_images",
                  "human_verification_results"):
        found = rows(db, f"SELECT DISTINCT created_by, updated_by FROM {table}")
        assert [(r.created_by, r.updated_by) for r in found] == [(tanaka, tanaka)], table
    found = rows(db, "SELECT DISTINCT created_by, updated_by FROM ai_inspection_results")
    assert [(r.created_by, r.updated_by) for r in found] == [(None, None)]
    # Row by row this was over five statements a row (two chain reads and a verification per
    # entry, a user by name per record…).
    assert sum(ran.values()) / pushed < 2.5, ran


def test_entries_kept_in_a_batch_are_judged_before_a_second_entry_breaks_the_chain(
    site: tuple[Site, Database, str], tablet: Tablet
) -> None:
    _, db, _ = site
    entries = [tablet.entry("request", None, "refused", None) for _ in range(3)]
    fields = {**{k: v for k, v in entries[1].items() if k != "hash"}, "username": "suzuki"}
    second = {**fields, "hash": fmt.entry_hash(entries[0]["hash"], fields)}
    tail = tablet.entry("request", None, "refused", None)
    tablet.push([*(tablet.entry_op(e) for e in entries),
                 tablet.op("audit_entry", second["id"], "INSERT", second),
                 tablet.entry_op(tail)])
    QueueProcessor(db, retry_s=0.0).drain()
    state = chain_state(db, tablet)
    # Verified through 3 when the second entry 2 arrived; the entry after it is kept, unjudged.
    assert (state.status, state.last_seq, state.last_hash, state.broken_seq) == (
        "broken", 3, entries[2]["hash"], 2)
    assert "duplicate_seq" in state.broken_reason
    assert len(rows(db, "SELECT id FROM audit_log WHERE chain = :c", c=tablet.identity.key)) == 4
    refused = rows(db, "SELECT entity_id, refusal FROM tauri_sync_queue WHERE refusal IS NOT NULL")
    assert [(r.entity_id, r.refusal) for r in refused] == [(uuid.UUID(second["id"]), "conflict")]

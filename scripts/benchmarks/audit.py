"""Audit verification throughput on the server: a device's chain of 100,000 entries stored in
PostgreSQL's ``audit_log`` as the queue processor stores them, verified the way
``kensa-server audit verify --device`` does — beside bare SHA-256 over the same bytes in the same
process (the least any verification must do), measured in the same run.

    scripts/bench audit

Figures: ``entries``; ``entries_s`` (``sync.server.audit.verify_chain``: read from PostgreSQL in
pages and checked with ``schema.formats.audit.verify_stored``); ``with_records_entries_s`` (the
whole ``verify``: the chain, then each record's newest digest, found by a pass over the chain's
rows); ``memory_entries_s`` (``verify_stored``
over the bytes already read); ``sha256_entries_s`` (bare ``hashlib.sha256`` of each entry);
``ratio`` (bare SHA-256 / verify, end to end); ``fields_entries_s`` (``verify_chain`` over the
entries as objects, canonicalising each again, on a tenth of them: what storing the bytes saves).
Target: ``entries_s`` >= 100,000.
"""

from __future__ import annotations

import gc
import hashlib
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.sync_bench import bench_site  # noqa: E402

ENTRIES = 100_000
ACTIONS = ("insert", "update", "update", "login", "update")


def _fields(seq: int, record: str) -> dict[str, Any]:
    """About the size of a tablet's entry for a state change (field-level before/after)."""
    return {
        "id": str(uuid.UUID(int=seq)), "seq": seq, "at": "2026-12-03T01:00:00.123456Z",
        "user_id": 2, "user_server_id": "0c7f6a52-6f36-4a57-9b3c-4f8f1b7c2d10",
        "username": "tanaka", "role": "inspector", "entity": "inspection_session_item",
        "entity_id": record, "action": ACTIONS[seq % len(ACTIONS)],
        "changes": {"status": {"before": "captured", "after": "ai_running"},
                    "version": {"before": seq, "after": seq + 1}},
        "reason": None, "detail": None, "row_digest": hashlib.sha256(record.encode()).hexdigest(),
    }


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def run() -> dict[str, Any]:
    import sqlalchemy as sa

    from schema import server as s
    from schema.db import Database, create_engine
    from schema.formats import audit as fmt
    from sync.server import audit

    started = time.perf_counter()
    record = str(uuid.uuid4())
    entries = fmt.chain([_fields(seq, record) for seq in range(1, ENTRIES + 1)])
    stored = [(fmt.canonical({k: v for k, v in e.items() if k != "hash"}), str(e["hash"]))
              for e in entries]
    print(f"  {ENTRIES:,} entries generated in {time.perf_counter() - started:.1f} s", flush=True)

    with bench_site() as bench:
        device = uuid.UUID(bench.site.device_ids["TAB-01"])
        db = Database(create_engine(bench.pg_url))
        table = s.AuditEntry.__table__  # type: ignore[attr-defined]
        try:
            with db.atomic() as session:
                for start in range(0, ENTRIES, 10_000):
                    session.execute(sa.insert(table), [
                        {"chain": str(device), "device_id": device, "seq": e["seq"],
                         "entry_id": e["id"], "at": e["at"], "username": e["username"],
                         "entity": e["entity"], "entity_id": e["entity_id"],
                         "action": e["action"], "row_digest": e["row_digest"],
                         "prev_hash": e["prev_hash"], "hash": e["hash"], "canonical": data}
                        for e, (data, _) in zip(entries[start:start + 10_000],
                                                stored[start:start + 10_000], strict=True)
                    ])
            with db.atomic() as session:
                session.execute(sa.text("ANALYZE audit_log"))
            # The generated chain is the bench's own heap, not the verifier's: keep the
            # collector from walking it again and again while the verifier allocates.
            gc.collect()
            gc.freeze()

            # Bare SHA-256 over the same bytes: the floor of any verification.
            t = time.perf_counter()
            for data, _ in stored:
                hashlib.sha256(data).hexdigest()
            sha_s = time.perf_counter() - t

            t = time.perf_counter()
            assert fmt.verify_stored(stored) is None
            memory_s = time.perf_counter() - t

            sample = entries[: ENTRIES // 10]
            t = time.perf_counter()
            assert fmt.verify_chain(sample) is None
            fields_s = time.perf_counter() - t

            best = whole = float("inf")
            for _ in range(3):
                with db.read() as session:
                    t = time.perf_counter()
                    count, found = audit.verify_chain(session, str(device))
                    best = min(best, time.perf_counter() - t)
                assert count == ENTRIES and found is None, found
                with db.read() as session:
                    t = time.perf_counter()
                    report = audit.verify(session, "TAB-01")
                    whole = min(whole, time.perf_counter() - t)
                assert report.clean and report.entries == ENTRIES, audit.dumps(report)
        finally:
            gc.unfreeze()
            db.dispose()

    figures = {
        "entries": ENTRIES,
        "entries_s": round(_rate(ENTRIES, best)),
        "with_records_entries_s": round(_rate(ENTRIES, whole)),
        "memory_entries_s": round(_rate(ENTRIES, memory_s)),
        "sha256_entries_s": round(_rate(ENTRIES, sha_s)),
        "ratio": round(_rate(ENTRIES, sha_s) / _rate(ENTRIES, best), 2),
        "fields_entries_s": round(_rate(len(sample), fields_s)),
        "bytes_per_entry": round(sum(len(d) for d, _ in stored) / ENTRIES),
    }
    print(f"  chain verified from PostgreSQL: {figures['entries_s']:,} entries/s (best of 3); "
          f"in memory {figures['memory_entries_s']:,}/s; the whole verify, records' digests "
          f"too: {figures['with_records_entries_s']:,}/s")
    print(f"  bare SHA-256 of the same bytes: {figures['sha256_entries_s']:,}/s "
          f"(ratio {figures['ratio']}); re-canonicalising each entry: "
          f"{figures['fields_entries_s']:,}/s; {figures['bytes_per_entry']} bytes an entry")
    return figures

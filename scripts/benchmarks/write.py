"""Durable workflow write (domain row + outbox row, through the unit of work) against a raw
sqlite3 two-row commit on the same kind of file (WAL, synchronous=FULL), interleaved in one run."""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ROUNDS = 300


def run() -> dict[str, object]:
    from schema import device as d
    from schema.db import Database, create_sqlite_engine
    from schema.migrate import upgrade_device
    from sidecar import outbox

    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        path = Path(tmp) / "kensa.db"
        upgrade_device(path)
        db = Database(create_sqlite_engine(path))
        raw_path = Path(tmp) / "raw.db"
        raw = sqlite3.connect(raw_path, isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=FULL")
        raw.execute("CREATE TABLE a (id TEXT PRIMARY KEY, product_id TEXT, batch_id TEXT, qr TEXT)")
        raw.execute(
            "CREATE TABLE b (seq INTEGER PRIMARY KEY AUTOINCREMENT, op_id TEXT UNIQUE, data TEXT)"
        )

        def durable() -> None:
            with db.atomic() as session:
                row = d.InspectionTarget(product_id="BRK-100", batch_id="A12-3456", qr_code="x")
                session.add(row)
                outbox.record_insert(session, row)

        def baseline() -> None:
            raw.execute("BEGIN IMMEDIATE")
            key = str(uuid.uuid4())
            raw.execute("INSERT INTO a VALUES (?, 'BRK-100', 'A12-3456', 'x')", (key,))
            raw.execute("INSERT INTO b (op_id, data) VALUES (?, ?)", (str(uuid.uuid4()), "{}"))
            raw.execute("COMMIT")

        ours: list[float] = []
        base: list[float] = []
        for _ in range(20):  # warm both paths
            durable()
            baseline()
        for _ in range(ROUNDS):
            for fn, out in ((durable, ours), (baseline, base)):
                t0 = time.perf_counter()
                fn()
                out.append((time.perf_counter() - t0) * 1000)
        raw.close()
        db.dispose()
    p50, raw_p50 = statistics.median(ours), statistics.median(base)
    print(
        f"durable write p50 {p50:.3f} ms; raw sqlite3 two-row commit p50 {raw_p50:.3f} ms; "
        f"ratio {p50 / raw_p50:.2f} (target <= 1.2), {ROUNDS} rounds each, interleaved"
    )
    return {
        "p50_ms": round(p50, 3),
        "raw_p50_ms": round(raw_p50, 3),
        "ratio": round(p50 / raw_p50, 3),
    }


if __name__ == "__main__":
    print(run())

"""History search over 100,000 inspections on the device database: p95 of typical queries, on
the tablet's encrypted store (SQLCipher) and, for comparison in the same run, a plaintext one."""

from __future__ import annotations

import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SESSIONS = 100_000
QUERIES = 200


def _fill(path: Path, key: Any) -> None:
    from schema.db import open_encrypted

    rng = random.Random(7)
    conn: Any = sqlite3.connect(path) if key is None else open_encrypted(path, key)
    conn.execute("PRAGMA foreign_keys=OFF")
    users = [(i, f"inspector{i:02d}", "x", "inspector") for i in range(1, 21)]
    conn.executemany(
        "INSERT INTO users (id, username, password_hash, role) VALUES (?, ?, ?, ?)", users
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    products = ["BRK-100", "PMP-220", "GRB-310", "VLV-040"]
    targets, sessions = [], []
    for i in range(SESSIONS):
        tid, sid = str(uuid.uuid4()), str(uuid.uuid4())
        product = rng.choice(products)
        when = start + timedelta(minutes=5 * i)
        stamp = when.replace(tzinfo=None).isoformat(sep=" ")
        done = (when + timedelta(minutes=4)).replace(tzinfo=None).isoformat(sep=" ")
        targets.append((tid, product, f"A{i % 90:02d}-{i % 9999:04d}", "{}", stamp, stamp))
        result = rng.choices(["OK", "NG", "PENDING"], weights=[90, 8, 2])[0]
        sessions.append(
            (sid, tid, rng.randint(1, 20), "completed", stamp, done, result, product, done)
        )
    conn.executemany(
        "INSERT INTO inspection_targets (id, product_id, batch_id, qr_code, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        targets,
    )
    conn.executemany(
        "INSERT INTO inspection_sessions (id, target_id, user_id, status, started_at, completed_at,"
        " result, product_code, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        sessions,
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def _search(key: Any) -> list[float]:
    from schema.db import Database, create_sqlite_engine
    from schema.migrate import upgrade_device
    from sidecar.services import history

    rng = random.Random(11)
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        path = Path(tmp) / "kensa.db"
        upgrade_device(path, key=key)
        t0 = time.perf_counter()
        _fill(path, key)
        kind = "plaintext" if key is None else "encrypted"
        print(f"  filled {SESSIONS} inspections ({kind}) in {time.perf_counter() - t0:.1f} s")
        db = Database(create_sqlite_engine(path, key=key))
        start = datetime(2026, 1, 1, tzinfo=UTC)
        shapes = [
            lambda: history.Query(),
            lambda: history.Query(inspector=f"inspector{rng.randint(1, 20):02d}"),
            lambda: history.Query(product=rng.choice(["BRK-100", "PMP-220"]), result="NG"),
            lambda: history.Query(
                started_from=start + timedelta(days=rng.randint(0, 300)),
                started_to=start + timedelta(days=rng.randint(301, 340)),
            ),
            lambda: history.Query(page=rng.randint(2, 50), page_size=50),
            lambda: history.Query(inspector="inspector03", product="BRK-100", result="OK"),
        ]
        times = []
        for i in range(QUERIES):
            q = shapes[i % len(shapes)]()
            t0 = time.perf_counter()
            with db.read() as session:
                page = history.search(session, q)
            times.append((time.perf_counter() - t0) * 1000)
            assert page.page_size == q.page_size
        db.dispose()
    times.sort()
    return times


def _p95(times: list[float]) -> float:
    return times[int(0.95 * len(times)) - 1]


def run() -> dict[str, object]:
    from sidecar.keys import DataKey

    encrypted = _search(DataKey.generate())
    plain = _search(None)
    p95, plain_p95 = _p95(encrypted), _p95(plain)
    print(
        f"history search over {SESSIONS} inspections, encrypted: p50 "
        f"{statistics.median(encrypted):.1f} ms, p95 {p95:.1f} ms (target <= 100 ms); plaintext "
        f"p50 {statistics.median(plain):.1f} ms, p95 {plain_p95:.1f} ms; {QUERIES} queries of "
        f"6 shapes each"
    )
    return {
        "sessions": SESSIONS,
        "p95_ms": round(p95, 2),
        "p50_ms": round(statistics.median(encrypted), 2),
        "plaintext_p95_ms": round(plain_p95, 2),
        "plaintext_p50_ms": round(statistics.median(plain), 2),
    }


if __name__ == "__main__":
    print(run())

"""Durable workflow write against raw sqlite3 commits on the same kind of file (WAL,
synchronous=FULL), interleaved in one run.

The write is the product's own: a unit of work (``Database.atomic()``) around
``sidecar.outbox.insert``, the call every inspection service makes to record a new record; the
record is the scanned unit ``inspection.start`` writes first. One such write commits four rows:
the record, its outbox row, its audit entry (hash-chained: the previous entry's hash is read in
the same transaction) and the entry's own outbox row.

``ratio`` is that write over a raw sqlite3 commit of the same four rows (same sizes, values made
beforehand) into bare tables of the same shape: what any durable write of that record costs,
with nothing of kensa's. Beside it, for reading the ratio: the raw two-row commit (record and
outbox row only, the write before the audit trail), the same four rows by raw sqlite3 into the
product's own tables (their indexes, CHECKs and the outbox's AUTOINCREMENT are part of any commit
there), and a whole service call, ``inspection.verify``, which also reads the session, the item
and the roll-up.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ROUNDS = 300
QR = '{"product_id": "BRK-100", "batch_id": "A12-3456", "serial": "0000001"}'


def _raw(path: Path) -> sqlite3.Connection:
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    return raw


def run() -> dict[str, object]:
    from schema import device as d
    from schema.db import Database, create_sqlite_engine
    from schema.migrate import upgrade_device
    from schema.types import utcnow
    from sidecar import outbox
    from sidecar.qr.payload import parse_payload
    from sidecar.services import inspection
    from sync.device.outbox_store import sqlite_time

    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        path = Path(tmp) / "kensa.db"
        upgrade_device(path)
        db = Database(create_sqlite_engine(path))
        raw = _raw(Path(tmp) / "raw.db")
        raw.execute("CREATE TABLE a (id TEXT PRIMARY KEY, product_id TEXT, batch_id TEXT, qr TEXT)")
        raw.execute(
            "CREATE TABLE b (seq INTEGER PRIMARY KEY AUTOINCREMENT, op_id TEXT UNIQUE, data TEXT)"
        )
        raw.execute(
            "CREATE TABLE c (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, at TEXT, entity TEXT, "
            "entity_id TEXT, action TEXT, row_digest TEXT, prev_hash TEXT, hash TEXT)"
        )
        # A file of its own: the raw entries would otherwise interleave with the product's chain.
        upgrade_device(Path(tmp) / "raw-product.db")
        raw_product = _raw(Path(tmp) / "raw-product.db")
        # What the raw commits write, made beforehand and as long as the product's own values.
        record_json = json.dumps(
            {
                "id": str(uuid.uuid4()),
                "product_id": "BRK-100",
                "batch_id": "A12-3456",
                "qr_code": QR,
                "created_at": utcnow().isoformat(),
                "updated_at": utcnow().isoformat(),
                "payload_format": "json",
                "version": 1,
            }
        )
        digest, link = "d" * 64, "e" * 64
        entry_json = json.dumps(
            {
                "id": str(uuid.uuid4()),
                "seq": 1,
                "at": sqlite_time(utcnow()),
                "user_id": None,
                "user_server_id": None,
                "username": None,
                "role": None,
                "entity": "inspection_target",
                "entity_id": str(uuid.uuid4()),
                "action": "insert",
                "changes": None,
                "reason": None,
                "detail": None,
                "row_digest": digest,
                "prev_hash": link,
                "hash": link,
            }
        )
        seq = iter(range(1, 10**9))

        def durable() -> None:
            with db.atomic() as session:
                outbox.insert(
                    session,
                    d.InspectionTarget,
                    product_id="BRK-100",
                    batch_id="A12-3456",
                    qr_code=QR,
                    payload_format="json",
                )

        def raw_two_rows() -> None:
            raw.execute("BEGIN IMMEDIATE")
            key = str(uuid.uuid4())
            raw.execute("INSERT INTO a VALUES (?, 'BRK-100', 'A12-3456', ?)", (key, QR))
            raw.execute("INSERT INTO b (op_id, data) VALUES (?, ?)", (str(uuid.uuid4()), "{}"))
            raw.execute("COMMIT")

        def raw_same_rows() -> None:
            raw.execute("BEGIN IMMEDIATE")
            key, entry = str(uuid.uuid4()), str(uuid.uuid4())
            raw.execute("INSERT INTO a VALUES (?, 'BRK-100', 'A12-3456', ?)", (key, QR))
            raw.execute(
                "INSERT INTO b (op_id, data) VALUES (?, ?)", (str(uuid.uuid4()), record_json)
            )
            raw.execute(
                "INSERT INTO c VALUES (?, ?, ?, 'inspection_target', ?, 'insert', ?, ?, ?)",
                (next(seq), entry, sqlite_time(utcnow()), key, digest, link, link),
            )
            raw.execute(
                "INSERT INTO b (op_id, data) VALUES (?, ?)", (str(uuid.uuid4()), entry_json)
            )
            raw.execute("COMMIT")

        product_seq = iter(range(1, 10**9))

        def raw_product_tables() -> None:
            key, entry, now = str(uuid.uuid4()), str(uuid.uuid4()), sqlite_time(utcnow())
            raw_product.execute("BEGIN IMMEDIATE")
            raw_product.execute(
                "INSERT INTO inspection_targets (id, product_id, batch_id, qr_code, created_at, "
                "updated_at, payload_format, version) VALUES (?, 'BRK-100', 'A12-3456', ?, ?, ?, "
                "'json', 1)",
                (key, QR, now, now),
            )
            raw_product.execute(
                "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, "
                "created_at) VALUES (?, 'inspection_target', ?, 'INSERT', ?, 0, ?)",
                (str(uuid.uuid4()), key, record_json, now),
            )
            raw_product.execute(
                "INSERT INTO audit_log (seq, id, at, entity, entity_id, action, row_digest, "
                "prev_hash, hash) VALUES (?, ?, ?, 'inspection_target', ?, 'insert', ?, ?, ?)",
                (next(product_seq), entry, now, key, digest, link, link),
            )
            raw_product.execute(
                "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, "
                "created_at) VALUES (?, 'audit_entry', ?, 'INSERT', ?, 0, ?)",
                (str(uuid.uuid4()), entry, entry_json, now),
            )
            raw_product.execute("COMMIT")

        ours: list[float] = []
        base: list[float] = []
        two_rows: list[float] = []
        product_tables: list[float] = []
        timed: list[tuple[Callable[[], None], list[float]]] = [
            (durable, ours),
            (raw_same_rows, base),
            (raw_two_rows, two_rows),
            (raw_product_tables, product_tables),
        ]
        for _ in range(20):  # warm every path
            for fn, _out in timed:
                fn()
        for _ in range(ROUNDS):
            for fn, out in timed:
                t0 = time.perf_counter()
                fn()
                out.append((time.perf_counter() - t0) * 1000)

        # A whole service call: verdicts on inspections of five items, one per round.
        with db.atomic() as session:
            user = d.User(id=1, username="bench", password_hash="-")  # noqa: S106 - no login here
            session.add(user)
            session.add(
                d.InspectionTargetMaster(
                    id="bench-target", product_code="BENCH-1", product_name="bench", version="1"
                )
            )
            for order in range(1, 6):
                session.add(
                    d.InspectionItemMaster(
                        id=f"bench-item-{order}",
                        target_id="bench-target",
                        item_code=f"V-{order}",
                        item_name=f"item {order}",
                        inspection_type="VISUAL",
                        ai_enabled=False,
                        criteria={"judgment_type": "BINARY", "measurement": "ok", "expected": True},
                        order_sequence=order,
                    )
                )
        verify: list[float] = []
        unit = parse_payload("BENCH-1_A12-3456_20260101T0800")
        while len(verify) < ROUNDS:
            with db.atomic() as session:
                started = inspection.start(session, unit, user)
                items = [i.item_id for i in inspection.session_items(session, started.id)]
            for item_id in items:
                verdict = inspection.Verdict("OK", 1.0)
                t0 = time.perf_counter()
                with db.atomic() as session:
                    inspection.verify(session, started.id, item_id, verdict, user)
                verify.append((time.perf_counter() - t0) * 1000)
        raw.close()
        raw_product.close()
        db.dispose()
    p50, raw_p50 = statistics.median(ours), statistics.median(base)
    two_p50, tables_p50 = statistics.median(two_rows), statistics.median(product_tables)
    verify_p50 = statistics.median(verify)
    print(
        f"durable write (outbox.insert in a unit of work: record, outbox row, audit entry, its "
        f"outbox row) p50 {p50:.3f} ms; raw sqlite3 commit of the same four rows p50 "
        f"{raw_p50:.3f} ms; ratio {p50 / raw_p50:.2f} (target <= 1.2), {ROUNDS} rounds each, "
        f"interleaved"
    )
    print(
        f"raw sqlite3 two-row commit (record and outbox row) p50 {two_p50:.3f} ms (durable write "
        f"over it {p50 / two_p50:.2f}); the same four rows by raw sqlite3 into the product's "
        f"tables p50 {tables_p50:.3f} ms (ratio {tables_p50 / raw_p50:.2f}); inspection.verify, "
        f"a whole service call, p50 {verify_p50:.3f} ms"
    )
    return {
        "p50_ms": round(p50, 3),
        "raw_p50_ms": round(raw_p50, 3),
        "ratio": round(p50 / raw_p50, 3),
        "raw_two_rows_p50_ms": round(two_p50, 3),
        "ratio_to_two_rows": round(p50 / two_p50, 3),
        "raw_product_tables_p50_ms": round(tables_p50, 3),
        "verify_p50_ms": round(verify_p50, 3),
    }


if __name__ == "__main__":
    print(run())

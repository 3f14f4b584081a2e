"""Durable workflow write against raw commits on the same kind of file (WAL, synchronous=FULL),
plaintext and encrypted, interleaved in one run.

The write is the product's own: a unit of work (``Database.atomic()``) around
``sidecar.outbox.insert``, the call every inspection service makes to record a new record; the
record is the scanned unit ``inspection.start`` writes first. One such write commits four rows:
the record, its outbox row, its audit entry (hash-chained: the previous entry's hash is read in
the same transaction) and the entry's own outbox row.

``ratio`` is that write on a plaintext store over a raw ``sqlite3`` commit of the same four rows
(same sizes, values made beforehand) into bare tables of the same shape: what any durable write
of that record costs, with nothing of kensa's. ``encrypted_ratio`` is the same on a SQLCipher
store (the tablet's own: a raw 256-bit key, as ``schema.db.open_encrypted`` opens it) over a raw
``sqlcipher3`` commit of the same rows; ``encrypted_over_plain`` is the encrypted write over the
raw plaintext commit. Beside them, for reading the ratios: the raw two-row commit (record and
outbox row only, the write before the audit trail), the four rows by raw sqlite3 into the
product's own tables (their indexes, CHECKs and the outbox's AUTOINCREMENT are part of any commit
there), and a whole service call, ``inspection.verify``, which also reads the session, the item
and the roll-up.

``floor`` is the same write coded by hand on a bare ``sqlite3`` connection to the product's
tables: ids, the record's JSON, its digest and the hash-chained entry made with the product's own
format functions (``schema.formats.audit``), the chain's head read in the transaction, the four
rows by prepared statements, nothing of SQLAlchemy's, the model's or the unit of work's.
``floor_ratio`` (floor over raw) is the least any Python write of this record costs against the
raw commit on this disk: a target below it cannot be met by the write's code, only by a slower
commit. ``encrypted_floor_ratio`` is the same on an encrypted file, over the raw ``sqlcipher3``
commit.

The ratios hold the write's own work against the commit's: where a commit's fsync takes
milliseconds (a tablet's eMMC) the write is within a few percent of raw; on a fast SSD, where it
takes a fifth of a millisecond, the same microseconds are a larger share.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ROUNDS = 300
QR = '{"product_id": "BRK-100", "batch_id": "A12-3456", "serial": "0000001"}'

Timed = Callable[[], None]


def _raw_connection(path: Path, key: Any = None) -> Any:
    if key is None:
        raw: Any = sqlite3.connect(path, isolation_level=None)
    else:
        import sqlcipher3

        raw = sqlcipher3.connect(str(path), isolation_level=None)
        raw.execute(f"PRAGMA key = \"x'{key.raw.hex()}'\"")
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    return raw


def _rows() -> tuple[str, str]:
    """The JSON of a record's outbox row and of an audit entry, as long as the product's."""
    from schema.types import utcnow
    from sync.device.outbox_store import sqlite_time

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
            "row_digest": "d" * 64,
            "prev_hash": "e" * 64,
            "hash": "e" * 64,
        }
    )
    return record_json, entry_json


def _bare(raw: Any) -> tuple[Timed, Timed]:
    """Raw commits into bare tables: the same four rows, and the two-row commit."""
    from schema.types import utcnow
    from sync.device.outbox_store import sqlite_time

    raw.execute("CREATE TABLE a (id TEXT PRIMARY KEY, product_id TEXT, batch_id TEXT, qr TEXT)")
    raw.execute(
        "CREATE TABLE b (seq INTEGER PRIMARY KEY AUTOINCREMENT, op_id TEXT UNIQUE, data TEXT)"
    )
    raw.execute(
        "CREATE TABLE c (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, at TEXT, entity TEXT, "
        "entity_id TEXT, action TEXT, row_digest TEXT, prev_hash TEXT, hash TEXT)"
    )
    record_json, entry_json = _rows()
    link = "e" * 64
    seq = iter(range(1, 10**9))

    def same_rows() -> None:
        raw.execute("BEGIN IMMEDIATE")
        key, entry = str(uuid.uuid4()), str(uuid.uuid4())
        raw.execute("INSERT INTO a VALUES (?, 'BRK-100', 'A12-3456', ?)", (key, QR))
        raw.execute("INSERT INTO b (op_id, data) VALUES (?, ?)", (str(uuid.uuid4()), record_json))
        raw.execute(
            "INSERT INTO c VALUES (?, ?, ?, 'inspection_target', ?, 'insert', ?, ?, ?)",
            (next(seq), entry, sqlite_time(utcnow()), key, link, link, link),
        )
        raw.execute("INSERT INTO b (op_id, data) VALUES (?, ?)", (str(uuid.uuid4()), entry_json))
        raw.execute("COMMIT")

    def two_rows() -> None:
        raw.execute("BEGIN IMMEDIATE")
        key = str(uuid.uuid4())
        raw.execute("INSERT INTO a VALUES (?, 'BRK-100', 'A12-3456', ?)", (key, QR))
        raw.execute("INSERT INTO b (op_id, data) VALUES (?, ?)", (str(uuid.uuid4()), "{}"))
        raw.execute("COMMIT")

    return same_rows, two_rows


def _product_tables(raw: Any) -> Timed:
    """The same four rows by raw SQL into a migrated device file of its own (the raw entries
    would otherwise interleave with the product's chain)."""
    from schema.types import utcnow
    from sync.device.outbox_store import sqlite_time

    record_json, entry_json = _rows()
    link = "e" * 64
    seq = iter(range(1, 10**9))

    def write() -> None:
        key, entry, now = str(uuid.uuid4()), str(uuid.uuid4()), sqlite_time(utcnow())
        raw.execute("BEGIN IMMEDIATE")
        raw.execute(
            "INSERT INTO inspection_targets (id, product_id, batch_id, qr_code, created_at, "
            "updated_at, payload_format, version) VALUES (?, 'BRK-100', 'A12-3456', ?, ?, ?, "
            "'json', 1)",
            (key, QR, now, now),
        )
        raw.execute(
            "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, "
            "created_at) VALUES (?, 'inspection_target', ?, 'INSERT', ?, 0, ?)",
            (str(uuid.uuid4()), key, record_json, now),
        )
        raw.execute(
            "INSERT INTO audit_log (seq, id, at, entity, entity_id, action, row_digest, "
            "prev_hash, hash) VALUES (?, ?, ?, 'inspection_target', ?, 'insert', ?, ?, ?)",
            (next(seq), entry, now, key, link, link, link),
        )
        raw.execute(
            "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, "
            "created_at) VALUES (?, 'audit_entry', ?, 'INSERT', ?, 0, ?)",
            (str(uuid.uuid4()), entry, entry_json, now),
        )
        raw.execute("COMMIT")

    return write


def _floor(raw: Any) -> Timed:
    """The write by hand: what it must compute and store, and nothing else (see the docstring)."""
    from schema.formats import audit as fmt
    from schema.types import utcnow
    from sync.device.outbox_store import sqlite_time

    target = (
        "INSERT INTO inspection_targets (id, product_id, batch_id, qr_code, created_at, "
        "updated_at, payload_format, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    queued = (
        "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, "
        "created_at) VALUES (?, ?, ?, 'INSERT', ?, 0, ?)"
    )
    logged = (
        "INSERT INTO audit_log (seq, id, at, user_id, user_server_id, username, role, entity, "
        "entity_id, action, changes, reason, detail, row_digest, prev_hash, hash) VALUES "
        "(?, ?, ?, NULL, NULL, NULL, NULL, 'inspection_target', ?, 'insert', NULL, NULL, NULL, "
        "?, ?, ?)"
    )
    last = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"

    def write() -> None:
        now = utcnow()
        stamp, stored = now.isoformat(), sqlite_time(now)
        key = str(uuid.uuid4())
        record = {
            "id": key,
            "product_id": "BRK-100",
            "batch_id": "A12-3456",
            "qr_code": QR,
            "created_at": stamp,
            "updated_at": stamp,
            "master_id": None,
            "master_version": None,
            "serial": None,
            "payload_format": "json",
            "version": 1,
        }
        digest = fmt.row_digest("inspection_target", record)
        raw.execute("BEGIN IMMEDIATE")
        raw.execute(target, (key, "BRK-100", "A12-3456", QR, stored, stored, "json", 1))
        raw.execute(
            queued, (str(uuid.uuid4()), "inspection_target", key, json.dumps(record), stored)
        )
        head = raw.execute(last).fetchone()
        seq, prev = (head[0] + 1, head[1]) if head is not None else (1, fmt.GENESIS)
        entry = {
            "id": str(uuid.uuid4()),
            "seq": seq,
            "at": stamp[:26] + "Z",
            "user_id": None,
            "user_server_id": None,
            "username": None,
            "role": None,
            "entity": "inspection_target",
            "entity_id": key,
            "action": "insert",
            "changes": None,
            "reason": None,
            "detail": None,
            "row_digest": digest,
            "prev_hash": prev,
        }
        text, sealed = fmt.sealed_entry(prev, entry)
        raw.execute(logged, (seq, entry["id"], entry["at"], key, digest, prev, sealed))
        raw.execute(queued, (str(uuid.uuid4()), "audit_entry", entry["id"], text, stored))
        raw.execute("COMMIT")

    return write


def _durable(db: Any) -> Timed:
    from schema import device as d
    from sidecar import outbox

    def write() -> None:
        with db.atomic() as session:
            outbox.insert(
                session,
                d.InspectionTarget,
                product_id="BRK-100",
                batch_id="A12-3456",
                qr_code=QR,
                payload_format="json",
            )

    return write


def _verify_p50(db: Any) -> float:
    """A whole service call: verdicts on inspections of five items, one per round."""
    from schema import device as d
    from sidecar.qr.payload import parse_payload
    from sidecar.services import inspection

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
    return statistics.median(verify)


def run() -> dict[str, object]:
    from schema.db import Database, create_sqlite_engine
    from schema.migrate import upgrade_device
    from sidecar import audit_verify
    from sidecar.keys import DataKey

    key = DataKey.generate()
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        folder = Path(tmp)
        upgrade_device(folder / "plain.db")
        upgrade_device(folder / "encrypted.db", key=key)
        upgrade_device(folder / "raw-product.db")
        upgrade_device(folder / "floor.db")
        upgrade_device(folder / "floor-encrypted.db", key=key)
        plain = Database(create_sqlite_engine(folder / "plain.db"))
        encrypted = Database(create_sqlite_engine(folder / "encrypted.db", key=key))
        raw_plain = _raw_connection(folder / "raw.db")
        raw_encrypted = _raw_connection(folder / "raw-encrypted.db", key)
        raw_product = _raw_connection(folder / "raw-product.db")
        raw_floor = _raw_connection(folder / "floor.db")
        raw_floor_encrypted = _raw_connection(folder / "floor-encrypted.db", key)
        plain_same, plain_two = _bare(raw_plain)
        encrypted_same, encrypted_two = _bare(raw_encrypted)
        series: dict[str, Timed] = {
            "write": _durable(plain),
            "raw": plain_same,
            "raw_two_rows": plain_two,
            "raw_product_tables": _product_tables(raw_product),
            "floor": _floor(raw_floor),
            "encrypted_floor": _floor(raw_floor_encrypted),
            "encrypted_write": _durable(encrypted),
            "encrypted_raw": encrypted_same,
            "encrypted_raw_two_rows": encrypted_two,
        }
        times: dict[str, list[float]] = {name: [] for name in series}
        for _ in range(20):  # warm every path
            for fn in series.values():
                fn()
        for _ in range(ROUNDS):
            for name, fn in series.items():
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1000)
        verify_p50 = _verify_p50(plain)
        for raw in (raw_plain, raw_encrypted, raw_product, raw_floor, raw_floor_encrypted):
            raw.close()
        plain.dispose()
        encrypted.dispose()
        # The floor is a floor only if it stores what the write stores: both files must hold a
        # whole chain whose entries match their records, as the tablet's own check reads them.
        for name, with_key in (
            ("plain.db", None),
            ("floor.db", None),
            ("encrypted.db", key),
            ("floor-encrypted.db", key),
        ):
            report = audit_verify.verify(folder / name, with_key)
            if not report.clean or report.records < ROUNDS:
                first: object = report.broken or (
                    report.records_wrong[0] if report.records_wrong else "too few records"
                )
                raise SystemExit(
                    f"{name}: the audit check fails on {report.records} records, "
                    f"{len(report.records_wrong)} wrong; first: {first}"
                )
    p50 = {name: statistics.median(values) for name, values in times.items()}
    ratio = p50["write"] / p50["raw"]
    encrypted_ratio = p50["encrypted_write"] / p50["encrypted_raw"]
    floor_ratio = p50["floor"] / p50["raw"]
    encrypted_floor_ratio = p50["encrypted_floor"] / p50["encrypted_raw"]
    print(
        f"durable write (outbox.insert in a unit of work: record, outbox row, audit entry, its "
        f"outbox row) p50 {p50['write']:.3f} ms; raw sqlite3 commit of the same four rows p50 "
        f"{p50['raw']:.3f} ms; ratio {ratio:.2f} (target <= 1.2), {ROUNDS} rounds each, "
        f"interleaved"
    )
    print(
        f"floor (the same write by hand on bare sqlite3: the product's formats and tables, no "
        f"SQLAlchemy) p50 {p50['floor']:.3f} ms; floor_ratio {floor_ratio:.2f}: the least a "
        f"write of this record from Python costs against the raw commit on this disk; the "
        f"write over the floor {p50['write'] / p50['floor']:.2f}"
    )
    print(
        f"encrypted (SQLCipher): durable write p50 {p50['encrypted_write']:.3f} ms; raw "
        f"sqlcipher3 commit of the same four rows p50 {p50['encrypted_raw']:.3f} ms; ratio "
        f"{encrypted_ratio:.2f} (target <= 1.2); over the raw plaintext commit "
        f"{p50['encrypted_write'] / p50['raw']:.2f} (target <= 1.5); the floor on an encrypted "
        f"file p50 {p50['encrypted_floor']:.3f} ms: encrypted_floor_ratio "
        f"{encrypted_floor_ratio:.2f}, over the raw plaintext commit "
        f"{p50['encrypted_floor'] / p50['raw']:.2f}"
    )
    print(
        f"raw two-row commits (record and outbox row): plaintext p50 "
        f"{p50['raw_two_rows']:.3f} ms (write over it {p50['write'] / p50['raw_two_rows']:.2f}), "
        f"encrypted p50 {p50['encrypted_raw_two_rows']:.3f} ms (encrypted write over it "
        f"{p50['encrypted_write'] / p50['encrypted_raw_two_rows']:.2f}); the four rows by raw "
        f"sqlite3 into the product's tables p50 {p50['raw_product_tables']:.3f} ms (write over "
        f"it {p50['write'] / p50['raw_product_tables']:.2f}); inspection.verify, a whole "
        f"service call, p50 {verify_p50:.3f} ms"
    )
    return {
        "p50_ms": round(p50["write"], 3),
        "raw_p50_ms": round(p50["raw"], 3),
        "ratio": round(ratio, 3),
        "encrypted_p50_ms": round(p50["encrypted_write"], 3),
        "encrypted_raw_p50_ms": round(p50["encrypted_raw"], 3),
        "encrypted_ratio": round(encrypted_ratio, 3),
        "encrypted_over_plain": round(p50["encrypted_write"] / p50["raw"], 3),
        "raw_two_rows_p50_ms": round(p50["raw_two_rows"], 3),
        "ratio_to_two_rows": round(p50["write"] / p50["raw_two_rows"], 3),
        "encrypted_raw_two_rows_p50_ms": round(p50["encrypted_raw_two_rows"], 3),
        "encrypted_ratio_to_two_rows": round(
            p50["encrypted_write"] / p50["encrypted_raw_two_rows"], 3
        ),
        "floor_p50_ms": round(p50["floor"], 3),
        "floor_ratio": round(floor_ratio, 3),
        "ratio_to_floor": round(p50["write"] / p50["floor"], 3),
        "encrypted_floor_p50_ms": round(p50["encrypted_floor"], 3),
        "encrypted_floor_ratio": round(encrypted_floor_ratio, 3),
        "encrypted_floor_over_plain": round(p50["encrypted_floor"] / p50["raw"], 3),
        "raw_product_tables_p50_ms": round(p50["raw_product_tables"], 3),
        "ratio_to_product_tables": round(p50["write"] / p50["raw_product_tables"], 3),
        "verify_p50_ms": round(verify_p50, 3),
    }


if __name__ == "__main__":
    print(run())

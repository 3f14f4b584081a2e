"""New records and outbox rows are written with prepared statements on the unit of work's own
connection (``sidecar.outbox.insert``, ``schema.db.insert_rows``), not by the ORM's flush.

What is stored must be exactly what a flush stored (same text, same SQLite storage class), the
outbox row must carry the same payload, and the unit of work must hold as before: a failure
leaves neither row, an inner block rolls back only its own rows, a refused row raises
SQLAlchemy's error.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from schema import db as schema_db
from schema import device as d
from schema.db import Database, create_sqlite_engine
from sidecar import outbox

AT = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
TIMES = {"created_at": AT, "updated_at": AT}

# One row of each table whose changes the server receives, with every kind of value those
# tables hold: text in and out of ASCII, NULLs beside server defaults, JSON objects and lists,
# booleans, floats, and explicit times.
RECORDS: list[tuple[type[SQLModel], dict[str, Any]]] = [
    (
        d.InspectionTarget,
        {
            "product_id": "BRK-100",
            "batch_id": "A12-3456",
            "qr_code": '{"product_id": "BRK-100", "note": "検査\\tline"}',
            "master_id": "target-brk100",
            "master_version": "3",
            "serial": None,
            "payload_format": "json",
            **TIMES,
        },
    ),
    (
        d.InspectionSession,
        {
            "target_id": "t-1",
            "user_id": 1,
            "status": "identified",
            "product_code": "BRK-100",
            "started_at": AT,
            "updated_at": AT,
        },
    ),
    (
        d.InspectionSessionItem,
        {
            "session_id": "s-1",
            "item_id": "item-v-scratch",
            "item_code": "V-SCRATCH",
            "order_sequence": 1,
            "required": False,
            **TIMES,
        },
    ),
    (
        d.InspectionImage,
        {
            "session_id": "s-1",
            "item_id": "item-v-scratch",
            "file_path": "images/ab/abcd.jpg",
            "thumbnail_path": "thumbnails/ab/abcd.jpg",
            "file_size": 123_456,
            "sha256": "ab" * 32,
            "mime_type": "image/jpeg",
            "width": 1920,
            "height": 1080,
            "created_at": AT,
        },
    ),
    (
        d.AIInspectionResult,
        {
            "session_id": "s-1",
            "item_id": "item-v-scratch",
            "image_id": None,
            "pipeline_id": "brk100-v-scratch",
            "pipeline_version": "3",
            "model_sha256": "cd" * 32,
            "overall_result": "NG",
            "confidence": 0.875,
            "processing_time": 0.0421,
            "measurements": {"defect_probability": 0.93, "boxes": [[1, 2, 3, 4]], "名": "傷"},
            "timings": None,
            "detailed_results": '{"label": "scratch"}',
            **TIMES,
        },
    ),
    (
        d.HumanVerificationResult,
        {
            "session_id": "s-1",
            "item_id": "item-v-scratch",
            "user_id": 1,
            "final_result": "NG",
            "notes": "burr\non the\tedge",
            "verification_time": 4.5,
            "defect_types": ["burr", "scratch"],
            "severity": "major",
            "overrode_ai": True,
            **TIMES,
        },
    ),
]
IDS = [model.__name__ for model, _ in RECORDS]


class PowerCut(Exception):
    pass


def stored(session: Session, model: type[SQLModel], row_id: str) -> dict[str, Any]:
    """Every column as SQLite's quote() renders it: the value and its storage class."""
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    names = [c.name for c in table.columns if c.name != "id"]
    quoted = ", ".join(f"quote({n})" for n in names)
    values = session.execute(
        sa.text(f"SELECT {quoted} FROM {table.name} WHERE id = :id"), {"id": row_id}
    ).one()
    return dict(zip(names, values, strict=True))


def outbox_data(session: Session, row_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    rows = session.exec(
        select(d.Outbox).where(d.Outbox.entity_id == row_id).order_by(col(d.Outbox.seq))
    ).all()
    return [(r.entity_type, r.operation, r.data) for r in rows]


@pytest.mark.parametrize(("model", "values"), RECORDS, ids=IDS)
def test_a_record_is_stored_as_a_flush_stored_it(
    device_db: Database, model: type[SQLModel], values: dict[str, Any]
) -> None:
    # The block is rolled back at the end: referential checks run at commit, and the parents
    # these rows name are not here.
    with pytest.raises(PowerCut), device_db.atomic() as session:
        session.add(d.User(id=1, username="tanaka", password_hash="-", server_id="srv-7"))
        session.flush()
        flushed = model(**values)
        session.add(flushed)
        session.flush()
        # A session's item is unique per session: the second one names another item.
        other = {"item_id": "item-v-foreign"} if model is d.InspectionSessionItem else {}
        written = outbox.insert(session, model, **{**values, **other})  # type: ignore[type-var]
        assert written.id != flushed.id
        assert stored(session, model, written.id) == {
            **stored(session, model, flushed.id),
            **{key: f"'{value}'" for key, value in other.items()},
        }
        # The same record travels as it did: the whole record, the user as a reference.
        [(entity_type, operation, data)] = outbox_data(session, written.id)
        assert (entity_type, operation) == (outbox.ENTITY_TYPES[model], "INSERT")
        same = {**outbox.payload(session, flushed), "id": written.id, **other}  # type: ignore[arg-type]
        assert data == same
        # The record handed back is the one stored, defaults included.
        assert written.model_dump() == {**flushed.model_dump(), "id": written.id, **other}
        raise PowerCut


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 3, 14, 18, 26, 53, 589793, tzinfo=timezone(timedelta(hours=9))),
        datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC),
        datetime(2026, 3, 13, 20, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    ],
    ids=["tablet-clock-in-jst", "whole-second", "behind-utc-across-midnight"],
)
def test_a_time_is_stored_as_a_flush_stored_it(device_db: Database, at: datetime) -> None:
    # The hot path writes times itself (schema.db._sqlite_utc_text): the same UTC text as
    # UTCDateTime and SQLite's DATETIME together, whatever zone the time was made in.
    _, values = RECORDS[0]
    times = {"created_at": at, "updated_at": at}
    with pytest.raises(PowerCut), device_db.atomic() as session:
        flushed = d.InspectionTarget(**{**values, **times})
        session.add(flushed)
        session.flush()
        written = outbox.insert(session, d.InspectionTarget, **{**values, **times})
        assert stored(session, d.InspectionTarget, written.id) == stored(
            session, d.InspectionTarget, flushed.id
        )
        raise PowerCut


def test_a_naive_time_is_refused_by_the_hot_path_as_by_a_flush(device_db: Database) -> None:
    _, values = RECORDS[0]
    naive = {"created_at": AT.replace(tzinfo=None), "updated_at": AT}
    with pytest.raises(ValueError, match="naive datetime"), device_db.atomic() as session:
        outbox.insert(session, d.InspectionTarget, **{**values, **naive})
    with device_db.read() as session:
        assert session.exec(select(d.InspectionTarget)).all() == []


def test_the_record_handed_back_is_never_inserted_twice(device_db: Database) -> None:
    _, values = RECORDS[0]
    with device_db.atomic() as session:
        row = outbox.insert(session, d.InspectionTarget, **{**values, "master_id": None})
    with device_db.atomic() as session:
        # Added to a later unit of work it is a stored record: a change is an UPDATE.
        row.serial = "0000042"
        session.add(row)
    with device_db.read() as session:
        found = session.exec(select(d.InspectionTarget)).all()
        assert [(r.id, r.serial) for r in found] == [(row.id, "0000042")]
        assert len(outbox_data(session, row.id)) == 1


def _target(session: Session, batch: str) -> d.InspectionTarget:
    return outbox.insert(
        session, d.InspectionTarget, product_id="BRK-100", batch_id=batch, qr_code=batch
    )


def _counts(db: Database) -> tuple[int, int, int]:
    """Records, their outbox rows, and audit entries (each with an outbox row of its own)."""
    with db.read() as session:
        targets = session.execute(sa.text("SELECT count(*) FROM inspection_targets")).scalar()
        rows = session.execute(
            sa.text("SELECT count(*) FROM outbox WHERE entity_type != 'audit_entry'")
        ).scalar()
        entries = session.execute(
            sa.text(
                "SELECT count(*) FROM audit_log"
                " WHERE (SELECT count(*) FROM outbox WHERE entity_type = 'audit_entry')"
                " = (SELECT count(*) FROM audit_log)"
            )
        ).scalar()
    return int(targets or 0), int(rows or 0), int(entries or 0)


def _fail_after_the_write(db: Database) -> None:
    with db.atomic() as session:
        _target(session, "A1")
        raise PowerCut


def _fail_after_a_flush_too(db: Database) -> None:
    with db.atomic() as session:
        _target(session, "A1")
        session.add(d.SystemConfig(key="k", value="v"))
        session.flush()
        raise PowerCut


def _refused_row(db: Database) -> None:
    # A CHECK constraint refuses the second record of the block; the first goes with it.
    with db.atomic() as session:
        _target(session, "A1")
        outbox.insert(session, d.InspectionSession, target_id="t", status="no-such-state")


def _duplicate_id(db: Database) -> None:
    with db.atomic() as session:
        first = _target(session, "A1")
        outbox.insert(
            session, d.InspectionTarget, id=first.id, product_id="X", batch_id="B", qr_code="Q"
        )


FAILURES = [
    (_fail_after_the_write, PowerCut),
    (_fail_after_a_flush_too, PowerCut),
    (_refused_row, sa.exc.IntegrityError),
    (_duplicate_id, sa.exc.IntegrityError),
]


@pytest.mark.parametrize(
    ("write", "error"), FAILURES, ids=[f.__name__.strip("_") for f, _ in FAILURES]
)
def test_a_failed_unit_of_work_leaves_neither_row(
    device_db: Database, write: Any, error: type[Exception]
) -> None:
    with device_db.atomic() as session:
        _target(session, "before")
    with pytest.raises(error):
        write(device_db)
    assert _counts(device_db) == (1, 1, 1)


def test_an_inner_block_rolls_back_only_its_own_rows(device_db: Database) -> None:
    with device_db.atomic() as session:
        first = _target(session, "outer")
        with pytest.raises(PowerCut), device_db.atomic() as inner:
            _target(inner, "inner")
            raise PowerCut
        last = _target(session, "after")
    with device_db.read() as session:
        batches = session.exec(
            select(d.InspectionTarget.batch_id).order_by(col(d.InspectionTarget.created_at))
        ).all()
        seqs = [
            (entity_id, seq)
            for entity_id, seq in session.execute(
                sa.text(
                    "SELECT entity_id, seq FROM outbox"
                    " WHERE entity_type != 'audit_entry' ORDER BY seq"
                )
            ).all()
        ]
    assert list(batches) == ["outer", "after"]
    assert [e for e, _ in seqs] == [first.id, last.id]
    assert seqs[0][1] < seqs[1][1]


def test_a_locked_database_is_sqlalchemys_error(
    device_db: Database, device_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Beginning a unit of work takes the write lock; when another writer holds it past the busy
    # timeout the caller sees SQLAlchemy's OperationalError, as from any other statement.
    pragmas = tuple((n, "50" if n == "busy_timeout" else v) for n, v in schema_db.SQLITE_PRAGMAS)
    monkeypatch.setattr(schema_db, "SQLITE_PRAGMAS", pragmas)
    db = Database(create_sqlite_engine(device_path))
    holder = sqlite3.connect(device_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sa.exc.OperationalError, match="locked"), db.atomic() as session:
            _target(session, "A1")
        holder.execute("ROLLBACK")
        with db.atomic() as session:
            _target(session, "A1")
    finally:
        holder.close()
        db.dispose()
    assert _counts(device_db) == (1, 1, 1)

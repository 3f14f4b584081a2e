"""Checking a tablet's audit trail offline, from its database file opened read-only: the chain
(``schema.formats.audit.verify_chain``), and every record against the digest its newest entry
carries, so a row changed with plain ``sqlite3`` is found and named.

``kensa audit verify`` (``sidecar.audit_cli``) prints what this finds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from schema.db import Driver, RawKey, open_encrypted
from schema.formats import audit as fmt
from sidecar import outbox

_COLUMNS = (*fmt.ENTRY_FIELDS, "hash")
_JSON = ("changes", "detail")


@dataclass(frozen=True)
class RecordProblem:
    table: str
    record_id: str
    seq: int  # the newest audit entry of the record
    message: str


@dataclass
class Report:
    entries: int = 0
    records: int = 0
    unaudited: int = 0  # records written before the trail existed: no entry to check them by
    broken: fmt.Break | None = None
    records_wrong: list[RecordProblem] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.broken is None and not self.records_wrong


def open_read_only(path: Path, key: RawKey | None = None) -> Driver:
    """The database file, read-only (SQLite's ``mode=ro``): verifying never writes. ``key``
    opens an encrypted store."""
    if not path.is_file():
        raise FileNotFoundError(f"no database file at {path}")
    if key is not None:
        return open_encrypted(path, key, read_only=True)
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _entries(conn: Driver) -> Iterator[dict[str, Any]]:
    cursor = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM audit_log ORDER BY seq")  # noqa: S608
    for values in cursor:
        entry = dict(zip(_COLUMNS, values, strict=True))
        for name in _JSON:
            if entry[name] is not None:
                entry[name] = json.loads(entry[name])
        yield entry


def verify(path: Path, key: RawKey | None = None) -> Report:
    report = Report()
    newest: dict[tuple[str, str], tuple[int, str | None]] = {}
    conn = open_read_only(path, key)
    try:

        def counted() -> Iterator[dict[str, Any]]:
            for entry in _entries(conn):
                report.entries += 1
                if entry["entity"] in _TABLES and entry["entity_id"] is not None:
                    newest[(entry["entity"], entry["entity_id"])] = (
                        entry["seq"],
                        entry["row_digest"],
                    )
                yield entry

        stream = counted()
        report.broken = fmt.verify_chain(stream)
        # Read the rest of the log after a break too, so every record has its newest entry.
        for _ in stream:
            pass
        engine = sa.create_engine("sqlite://", creator=lambda: conn, poolclass=sa.pool.StaticPool)
        with Session(engine) as session:
            _check_records(session, newest, report)
    finally:
        conn.close()
    return report


_TABLES: dict[str, Any] = {name: model for model, name in outbox.ENTITY_TYPES.items()}


def _check_records(
    session: Session, newest: dict[tuple[str, str], tuple[int, str | None]], report: Report
) -> None:
    seen: set[tuple[str, str]] = set()
    for entity, model in _TABLES.items():
        table = model.__tablename__
        for row in session.exec(select(model)):
            key = (entity, str(row.id))
            seen.add(key)
            found = newest.get(key)
            if found is None:
                report.unaudited += 1
                continue
            report.records += 1
            seq, digest = found
            if digest is None:
                report.records_wrong.append(
                    RecordProblem(table, key[1], seq, f"entry {seq} deleted it, yet it is here")
                )
            elif outbox.digest(session, row) != digest:
                report.records_wrong.append(
                    RecordProblem(
                        table,
                        key[1],
                        seq,
                        f"does not match the digest in its newest audit entry ({seq})",
                    )
                )
            session.expunge(row)
    for (entity, record_id), (seq, digest) in newest.items():
        if digest is not None and (entity, record_id) not in seen:
            table = _TABLES[entity].__tablename__
            report.records_wrong.append(
                RecordProblem(table, record_id, seq, f"is missing; entry {seq} recorded it")
            )

"""The device database really runs in WAL mode with synchronous=FULL and enforced foreign keys."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from schema.db import BUSY_TIMEOUT_MS, Database


def test_pragmas_on_every_pooled_connection(device_db: Database) -> None:
    # Several connections: the pragmas that are per-connection must hold on each one.
    # DEFERRED: three IMMEDIATE transactions at once would (rightly) queue on the write lock.
    readers = device_db.engine.execution_options(sqlite_begin="DEFERRED")
    conns = [readers.connect() for _ in range(3)]
    try:
        for conn in conns:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS
    finally:
        for conn in conns:
            conn.close()


def test_the_file_itself_is_in_wal_mode(device_db: Database, device_path: Path) -> None:
    with device_db.atomic() as session:
        session.execute(sa.text("INSERT INTO system_config (key, value) VALUES ('a', 'b')"))
    # Bytes 18 and 19 of the header are the read/write format versions: 2 means WAL.
    header = device_path.read_bytes()[:20]
    assert header[18] == 2 and header[19] == 2
    # A plain sqlite3 connection, knowing nothing of kensa, sees WAL too.
    raw = sqlite3.connect(device_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()
    assert Path(f"{device_path}-wal").exists()

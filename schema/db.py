"""Opening the databases, and the one unit-of-work helper every caller uses.

The caller owns the transaction: repositories add rows to the session they are given and never
commit, so a domain row and its outbox row commit together or not at all.
"""

from __future__ import annotations

import contextvars
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

BUSY_TIMEOUT_MS = 5000

# Applied on every new SQLite connection. WAL lets the UI read while a job writes; FULL because a
# tablet loses power and NORMAL may lose the last committed transactions in WAL mode; foreign keys
# are off by default in SQLite and must be asked for on each connection.
# busy_timeout comes first: switching a new connection to WAL needs a lock, and without the
# timeout it fails at once while another process is writing.
SQLITE_PRAGMAS = (
    ("busy_timeout", str(BUSY_TIMEOUT_MS)),
    ("journal_mode", "WAL"),
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
)


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


def _pragmas(foreign_keys: bool) -> Callable[[sqlite3.Connection, ConnectionPoolEntry], None]:
    def on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (_on_begin):
        # the module's own implicit BEGIN breaks SAVEPOINTs and delays the write lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for name, value in SQLITE_PRAGMAS:
                if name == "foreign_keys" and not foreign_keys:
                    value = "OFF"
                cursor.execute(f"PRAGMA {name}={value}")
        finally:
            cursor.close()

    return on_connect


def _on_begin(connection: sa.Connection) -> None:
    # Writers take the write lock at BEGIN: a deferred transaction that reads and then writes can
    # fail with SQLITE_BUSY at the write without waiting for busy_timeout.
    mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    connection.exec_driver_sql(f"BEGIN {mode}")


def create_sqlite_engine(path: str | Path, *, foreign_keys: bool = True, **kwargs: Any) -> Engine:
    """An engine on a SQLite file with kensa's pragmas on every connection.

    ``foreign_keys=False`` is for migrations only: SQLite rebuilds a table to alter it, and with
    enforcement on, dropping the old copy would cascade into the rows that refer to it. The
    migration runner checks the keys itself before it commits.
    """
    engine = sa.create_engine(sqlite_url(path), **kwargs)
    event.listen(engine, "connect", _pragmas(foreign_keys))
    event.listen(engine, "begin", _on_begin)
    return engine


def create_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for a database URL: SQLite files get kensa's pragmas, others are plain."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("kensa needs a SQLite file, not an in-memory database")
        return create_sqlite_engine(parsed.database, **kwargs)
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


class Database:
    """A database and its unit of work.

    ``atomic()`` opens a transaction, or a SAVEPOINT when one is already open in this context, so
    helpers can be composed: the outermost block commits, an inner failure rolls back only its
    own part (sqlite-utils' ``atomic()`` does the same).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = engine.execution_options(sqlite_begin="DEFERRED")
        self._current: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
            f"kensa_session_{id(self)}", default=None
        )

    @contextmanager
    def atomic(self) -> Iterator[Session]:
        current = self._current.get()
        if current is not None:
            with current.begin_nested():
                yield current
            return
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            token = self._current.set(session)
            try:
                yield session
            finally:
                self._current.reset(token)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session that does not take SQLite's write lock."""
        current = self._current.get()
        if current is not None:
            yield current
            return
        # Closing the session rolls its implicit transaction back.
        with Session(self._reader, expire_on_commit=False) as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

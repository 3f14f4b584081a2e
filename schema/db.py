"""Opening the databases, and the one unit-of-work helper every caller uses.

The caller owns the transaction: repositories add rows to the session they are given and never
commit, so a domain row and its outbox row commit together or not at all.
"""

from __future__ import annotations

import contextvars
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    statement = f"BEGIN {mode}"
    # Straight to the driver: every unit of work begins here, and Core's statement machinery
    # costs more than the BEGIN itself (see scripts/benchmarks/write.py).
    driver = connection.connection.driver_connection
    assert driver is not None, "a connection that is open has its driver's connection"
    try:
        driver.execute(statement)
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc


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


# ---------------------------------------------------------------------------------------------
# Hot writes
# ---------------------------------------------------------------------------------------------


class _PreparedInsert:
    """An INSERT of fixed columns, in the dialect's quoting, with its columns' bind processors.

    The ORM's flush and Core's execution path each cost more per row than SQLite's durable commit
    on a tablet's flash: a workflow write is a few rows, so the fixed cost is what a user waits
    for. Executed on the unit of work's own driver connection, the rows join its transaction
    and its savepoints like any other statement. Only the named columns are written: a column
    left out gets its server default, never a Python-side default Core would have added.
    """

    __slots__ = ("_processors", "sql")

    def __init__(self, table: sa.Table, keys: tuple[str, ...], dialect: sa.Dialect) -> None:
        quote = dialect.identifier_preparer
        columns = ", ".join(quote.format_column(table.c[key]) for key in keys)
        marks = ", ".join("?" for _ in keys)
        # Only names from the table's own metadata, quoted by the dialect; values are bound.
        self.sql = f"INSERT INTO {quote.format_table(table)} ({columns}) VALUES ({marks})"  # noqa: S608
        self._processors = [
            (key, table.c[key].type.dialect_impl(dialect).bind_processor(dialect)) for key in keys
        ]

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            values[key] if process is None else process(values[key])
            for key, process in self._processors
        )


_prepared: dict[tuple[sa.Table, tuple[str, ...]], _PreparedInsert] = {}


def insert_rows(session: Session, rows: Sequence[tuple[sa.Table, Mapping[str, Any]]]) -> None:
    """Insert rows, in order, in the session's unit of work, without the ORM.

    Each row names its columns; a NULL for a column with a server default is left out so that
    the default applies, as a flush would. Nothing here commits: the rows commit or roll back
    with the rest of the unit of work (savepoints included). A refused row raises SQLAlchemy's
    exception (an ``IntegrityError`` for a constraint), as a flush would. The session's objects
    are not told: a row written here is found by a query, not in the identity map.
    """
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "sqlite" or dialect.paramstyle != "qmark":
        for table, values in rows:
            connection.execute(table.insert(), [_with_defaults(table, values)])
        return
    driver = connection.connection.driver_connection
    assert driver is not None, "a connection that is open has its driver's connection"
    for table, values in rows:
        row = _with_defaults(table, values)
        key = (table, tuple(row))
        prepared = _prepared.get(key)
        if prepared is None:
            prepared = _prepared[key] = _PreparedInsert(table, key[1], dialect)
        params = prepared.params(row)
        try:
            driver.execute(prepared.sql, params)
        except sqlite3.Error as exc:
            raise sa.exc.DBAPIError.instance(prepared.sql, params, exc, sqlite3.Error) from exc


_server_defaults: dict[sa.Table, frozenset[str]] = {}


def _with_defaults(table: sa.Table, values: Mapping[str, Any]) -> dict[str, Any]:
    defaulted = _server_defaults.get(table)
    if defaulted is None:
        defaulted = _server_defaults[table] = frozenset(
            c.key for c in table.columns if c.server_default is not None
        )
    return {
        key: value for key, value in values.items() if value is not None or key not in defaulted
    }

"""Opening the databases, and the one unit-of-work helper every caller uses.

The caller owns the transaction: repositories add rows to the session they are given and never
commit, so a domain row and its outbox row commit together or not at all.
"""

from __future__ import annotations

import contextvars
import json
import operator
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
import sqlcipher3
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool
from sqlmodel import Session

from schema.errors import KeyRefused
from schema.types import UTCDateTime

BUSY_TIMEOUT_MS = 5000

# The driver connection of a device database: the standard module's for a plaintext file,
# SQLCipher's (the same pysqlite API, its own classes) for an encrypted one.
Driver = sqlite3.Connection | sqlcipher3.Connection
# What either driver raises; SQLAlchemy translates only the errors of the module it was given.
DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, sqlcipher3.Error)


class RawKey(Protocol):
    """A 256-bit key (``sidecar.keys.DataKey``; this package does not import the sidecar)."""

    @property
    def raw(self) -> bytes: ...


def _dbapi_error(exc: Exception) -> type[Exception]:
    return sqlcipher3.Error if isinstance(exc, sqlcipher3.Error) else sqlite3.Error


def _key_pragma(key: RawKey) -> str:
    # A raw key (x'...'), not a passphrase: SQLCipher then skips its 256,000-round PBKDF2, which
    # would cost every new connection (the start, each writer) a quarter of a second. The data
    # key is already 32 random bytes, which is what the KDF would have produced.
    raw = key.raw
    if len(raw) != 32:
        raise ValueError("a database key is 32 bytes")
    return f"PRAGMA key = \"x'{raw.hex()}'\""


def open_encrypted(
    path: str | Path, key: RawKey, *, read_only: bool = False
) -> sqlcipher3.Connection:
    """A SQLCipher connection on ``path`` with ``key`` applied and checked.

    SQLCipher accepts any key at ``PRAGMA key`` and fails at the first read; reading the schema
    here makes a wrong key (or a file that is no database) fail now, as ``KeyRefused``, before
    anything else touches the file. A missing file is created (encrypted) unless ``read_only``.
    """
    target = f"{Path(path).resolve().as_uri()}?mode=ro" if read_only else str(path)
    conn = sqlcipher3.connect(target, uri=read_only, check_same_thread=False)
    try:
        # A wrong key is answered by KeyRefused below; SQLCipher's own log of the failed page
        # check would only repeat it on stderr, in its words.
        conn.execute("PRAGMA cipher_log_level = NONE")
        conn.execute(_key_pragma(key))
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError as exc:
        conn.close()
        raise KeyRefused(
            f"{path} cannot be opened with this data key: the key is wrong (another tablet's, or "
            f"an old one), or the file is not an encrypted kensa database"
        ) from exc
    return conn

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


# Page cache of an encrypted connection, in KiB (allocated as pages are read, up to this).
ENCRYPTED_CACHE_KIB = 32 * 1024


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


def _pragmas(foreign_keys: bool) -> Callable[[Driver, ConnectionPoolEntry], None]:
    def on_connect(dbapi_connection: Driver, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (_on_begin):
        # the module's own implicit BEGIN breaks SAVEPOINTs and delays the write lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for name, value in SQLITE_PRAGMAS:
                if name == "foreign_keys" and not foreign_keys:
                    value = "OFF"
                cursor.execute(f"PRAGMA {name}={value}")
            if isinstance(dbapi_connection, sqlcipher3.Connection):
                # SQLCipher decrypts a page each time it enters SQLite's own cache: the OS's
                # cache holds only ciphertext. With the default 2 MiB a history search over a
                # year of inspections decrypted most of the table again on every query (p95 7x
                # plaintext's, scripts/bench history); pages stay decrypted here.
                cursor.execute(f"PRAGMA cache_size=-{ENCRYPTED_CACHE_KIB}")
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
    if driver.in_transaction:
        # A unit of work that began on the driver itself (Database.atomic's writer) and whose
        # session now starts using the ORM: the transaction is already open, and is the same.
        return
    _driver_execute(driver, statement)


def _driver_execute(driver: Driver, statement: str) -> None:
    try:
        driver.execute(statement)
    except DRIVER_ERRORS as exc:
        raise sa.exc.DBAPIError.instance(statement, (), exc, _dbapi_error(exc)) from exc


def create_sqlite_engine(
    path: str | Path, *, foreign_keys: bool = True, key: RawKey | None = None, **kwargs: Any
) -> Engine:
    """An engine on a SQLite file with kensa's pragmas on every connection.

    ``key`` opens (or creates) the file encrypted with SQLCipher; without one it is plain
    SQLite (the server's embedded database, a tablet in development mode). A wrong key fails
    at the first connection with ``KeyRefused``.

    ``foreign_keys=False`` is for migrations only: SQLite rebuilds a table to alter it, and with
    enforcement on, dropping the old copy would cascade into the rows that refer to it. The
    migration runner checks the keys itself before it commits.
    """
    if key is None:
        engine = sa.create_engine(sqlite_url(path), **kwargs)
    else:
        # An error's message goes to logs and answers; the values it was bound with are the
        # records the encryption protects (a user's name, a QR text), so it does not carry them.
        kwargs.setdefault("hide_parameters", True)
        # The pysqlite dialect driving SQLCipher's module (the same API): the key is applied by
        # our own creator before the dialect's first query, and SQLAlchemy translates the
        # module's errors. Not the ``pysqlcipher`` dialect: it sends a passphrase, which costs
        # a PBKDF2 per connection, and pools one connection per thread.
        def creator() -> sqlcipher3.Connection:
            return open_encrypted(path, key)

        engine = sa.create_engine(
            sqlite_url(path), module=sqlcipher3.dbapi2, creator=creator, **kwargs
        )
    event.listen(engine, "connect", _pragmas(foreign_keys))
    event.listen(engine, "begin", _on_begin)
    _sqlite_files[engine] = (Path(path), foreign_keys, key)
    return engine


# The file, the foreign-key setting and the key of each engine create_sqlite_engine made: what a
# Database needs to open writer connections of its own with the same pragmas.
_sqlite_files: weakref.WeakKeyDictionary[Engine, tuple[Path, bool, RawKey | None]] = (
    weakref.WeakKeyDictionary()
)


# Seconds a PostgreSQL connection may take to open (a URL's own ``connect_timeout`` wins).
POSTGRES_CONNECT_TIMEOUT_S = 5


def create_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for a database URL: SQLite files get kensa's pragmas, others are plain."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("kensa needs a SQLite file, not an in-memory database")
        return create_sqlite_engine(parsed.database, **kwargs)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # A server that accepts the connection and never answers (a half-dead host, a firewall
        # that drops packets) would otherwise hold a request, /readyz included, for the operating
        # system's TCP timeout: minutes, while a load balancer waits on it.
        connect_args = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
                        **kwargs.pop("connect_args", {})}
        kwargs["connect_args"] = connect_args
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
        sqlite_file = _sqlite_files.get(engine)
        self._writers = _Writers(*sqlite_file) if sqlite_file is not None else None

    @contextmanager
    def atomic(self) -> Iterator[Session]:
        current = self._current.get()
        if current is not None:
            with current.begin_nested():
                yield current
            return
        if self._writers is None:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                token = self._current.set(session)
                try:
                    yield session
                finally:
                    self._current.reset(token)
            return
        writer = self._writers.take()
        try:
            with _writer_unit(writer) as session:
                token = self._current.set(session)
                try:
                    yield session
                finally:
                    self._current.reset(token)
        finally:
            self._writers.give_back(writer)

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
        if self._writers is not None:
            self._writers.close()
        self.engine.dispose()


# ---------------------------------------------------------------------------------------------
# The SQLite unit of work
# ---------------------------------------------------------------------------------------------

_WRITER = "kensa_writer"


class _Writer:
    """One connection kept open for units of work: the Core connection a session binds to, its
    driver connection, and the dialect that binds values for it."""

    __slots__ = ("connection", "dialect", "driver")

    def __init__(self, connection: sa.Connection) -> None:
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection | sqlcipher3.Connection), "a SQLite one"
        self.connection = connection
        self.driver: Driver = driver
        self.dialect = connection.dialect


class _Writers:
    """The connections units of work write through, each used by one unit at a time.

    A unit of work on a tablet is a few small rows and one durable commit; taking a connection
    from SQLAlchemy's pool, building an ORM transaction and returning the connection cost about as
    much as that commit (scripts/benchmarks/write.py). Here a unit takes a connection from a free
    list and begins on the driver; the session it hands out joins that transaction only if the
    caller uses the ORM (rows written by ``insert_rows`` never need it). The list grows to the
    number of units of work open at once, which SQLite's single writer keeps small.
    """

    def __init__(self, path: Path, foreign_keys: bool, key: RawKey | None) -> None:
        self._engine = create_sqlite_engine(
            path, foreign_keys=foreign_keys, key=key, poolclass=NullPool
        )
        self._free: list[_Writer] = []
        self._lock = threading.Lock()
        self._closed = False
        # A forked child must not write through its parent's connections (SQLite forbids using
        # a connection across fork): it forgets them and opens its own.
        ref = weakref.ref(self)

        def forget() -> None:
            writers = ref()
            if writers is not None:
                writers._free = []

        os.register_at_fork(after_in_child=forget)

    def take(self) -> _Writer:
        try:
            writer = self._free.pop()
        except IndexError:
            return _Writer(self._engine.connect())
        if writer.connection.closed or writer.connection.invalidated:
            writer.connection.close()
            return self.take()
        return writer

    def give_back(self, writer: _Writer) -> None:
        with self._lock:
            if not self._closed and not writer.driver.in_transaction:
                self._free.append(writer)
                return
        writer.connection.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
        for writer in free:
            writer.connection.close()
        self._engine.dispose()


@contextmanager
def _writer_unit(writer: _Writer) -> Iterator[Session]:
    """A transaction begun on the driver, and a session that joins it when first used."""
    session = Session(bind=writer.connection, expire_on_commit=False)
    session.info[_WRITER] = writer
    _driver_execute(writer.driver, "BEGIN IMMEDIATE")
    used = False
    try:
        yield session
        used = session.in_transaction()
        if used:
            session.commit()
        # A session that began without reaching the connection commits nothing on it.
        if writer.driver.in_transaction:
            _driver_execute(writer.driver, "COMMIT")
    except BaseException:
        used = True
        _rollback(session, writer)
        raise
    finally:
        # A session the caller never used holds no objects and no connection.
        if used:
            session.close()


def _rollback(session: Session, writer: _Writer) -> None:
    # A failed COMMIT (a deferred foreign key) leaves SQLite's transaction open; whatever failed,
    # the connection goes back with none.
    try:
        if session.in_transaction():
            session.rollback()
    finally:
        if writer.driver.in_transaction:
            writer.driver.execute("ROLLBACK")


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

    __slots__ = ("_get", "_processors", "sql")

    def __init__(self, table: sa.Table, keys: tuple[str, ...], dialect: sa.Dialect) -> None:
        quote = dialect.identifier_preparer
        columns = ", ".join(quote.format_column(table.c[key]) for key in keys)
        marks = ", ".join("?" for _ in keys)
        # Only names from the table's own metadata, quoted by the dialect; values are bound.
        self.sql = f"INSERT INTO {quote.format_table(table)} ({columns}) VALUES ({marks})"  # noqa: S608
        # Most columns (text, integers) bind as they are: the values are picked in one C call
        # and only the few with a processor (times, JSON) are converted.
        self._get = operator.itemgetter(*keys) if len(keys) > 1 else _one(keys[0])
        self._processors = [
            (index, process)
            for index, key in enumerate(keys)
            if (process := _bind_processor(table.c[key], dialect)) is not None
        ]

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...] | list[Any]:
        picked: tuple[Any, ...] = self._get(values)
        if not self._processors:
            return picked
        out = list(picked)
        for index, process in self._processors:
            out[index] = process(out[index])
        return out


def _one(key: str) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    return lambda values: (values[key],)


class Serialized(dict[str, Any]):
    """A JSON object that carries its own JSON text, for a writer that already made it (an audit
    entry is serialised to be hashed): ``insert_rows`` stores ``text`` on SQLite instead of
    serialising the object again. Anywhere else it is the plain ``dict`` it also is."""

    __slots__ = ("text",)

    def __init__(self, value: Mapping[str, Any], text: str) -> None:
        super().__init__(value)
        self.text = text


def _bind_processor(column: sa.Column[Any], dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    if dialect.name == "sqlite":
        if isinstance(column.type, UTCDateTime):
            return _sqlite_utc_text
        # Only where SQLAlchemy itself would serialise with json.dumps and write None as null.
        json_serializer = getattr(dialect, "_json_serializer", None)
        json_type = isinstance(column.type, sa.JSON) and not column.type.none_as_null
        if json_type and json_serializer is None:
            return _sqlite_json
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def _sqlite_json(value: Any) -> str | None:
    """What SQLAlchemy's JSON type writes with the default serialiser (``json.dumps``; None is
    JSON ``null``), or the text a ``Serialized`` object carries."""
    kind = type(value)
    if kind is Serialized:
        text: str = value.text
        return text
    if value is None or value is _JSON_NULL:
        return "null"
    if kind is not dict and kind is not list and isinstance(value, _SQL_NULL):
        return None
    return json.dumps(value)


_JSON_NULL = sa.JSON.NULL
_SQL_NULL = sa.sql.elements.Null


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """What ``UTCDateTime`` and SQLite's DATETIME write for ``value`` (``YYYY-MM-DD
    HH:MM:SS.ffffff`` in UTC), in one step instead of their chain of two."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime: store timezone-aware UTC values only")
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]


_prepared: dict[tuple[sa.Table, tuple[str, ...]], _PreparedInsert] = {}


def insert_rows(session: Session, rows: Sequence[tuple[sa.Table, Mapping[str, Any]]]) -> None:
    """Insert rows, in order, in the session's unit of work, without the ORM.

    Each row names its columns; a NULL for a column with a server default is left out so that
    the default applies, as a flush would. Nothing here commits: the rows commit or roll back
    with the rest of the unit of work (savepoints included). A refused row raises SQLAlchemy's
    exception (an ``IntegrityError`` for a constraint), as a flush would. The session's objects
    are not told: a row written here is found by a query, not in the identity map.
    """
    driver = sqlite_driver(session)
    if driver is None:
        connection = session.connection()
        for table, values in rows:
            connection.execute(table.insert(), [_with_defaults(table, values)])
        return
    dialect = _dialect_of(session)
    for table, values in rows:
        row = _with_defaults(table, values)
        key = (table, tuple(row))
        prepared = _prepared.get(key)
        if prepared is None:
            prepared = _prepared[key] = _PreparedInsert(table, key[1], dialect)
        params = prepared.params(row)
        try:
            driver.execute(prepared.sql, params)
        except DRIVER_ERRORS as exc:
            encrypted = isinstance(exc, sqlcipher3.Error)
            raise sa.exc.DBAPIError.instance(
                prepared.sql, params, exc, _dbapi_error(exc), hide_parameters=encrypted
            ) from exc


def sqlite_driver(session: Session) -> Driver | None:
    """The SQLite driver connection the session's unit of work writes through, for statements
    prepared once and run past SQLAlchemy (``insert_rows``, the audit trail's last entry);
    ``None`` for another database, which takes the ordinary path.

    A statement run on it belongs to the unit of work, savepoints included."""
    writer: _Writer | None = session.info.get(_WRITER)
    if writer is not None:
        if session.in_transaction():
            # The ORM's transaction (a SAVEPOINT of a nested block above all) reaches the
            # connection only when the session first asks for it: ask before writing.
            session.connection()
        return writer.driver
    connection = session.connection()
    if connection.dialect.name != "sqlite" or connection.dialect.paramstyle != "qmark":
        return None
    found = connection.connection.driver_connection
    assert isinstance(found, sqlite3.Connection | sqlcipher3.Connection), "a SQLite connection"
    return found


def _dialect_of(session: Session) -> sa.Dialect:
    writer: _Writer | None = session.info.get(_WRITER)
    if writer is not None:
        return writer.dialect
    return session.connection().dialect


_server_defaults: dict[sa.Table, frozenset[str]] = {}


def _with_defaults(table: sa.Table, values: Mapping[str, Any]) -> Mapping[str, Any]:
    defaulted = _server_defaults.get(table)
    if defaulted is None:
        defaulted = _server_defaults[table] = frozenset(
            c.key for c in table.columns if c.server_default is not None
        )
    # Most rows give every defaulted column a value (or do not name it): those go as they are.
    for key in defaulted:
        if key in values and values[key] is None:
            return {k: v for k, v in values.items() if v is not None or k not in defaulted}
    return values

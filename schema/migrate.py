"""Running the two Alembic environments, with the checks that keep a bad file untouched.

Before anything writes to a device database, the file is inspected read-only: a file that is not
SQLite, a corrupt one, or one that belongs to another application (or to a newer kensa) stops the
upgrade with a clear message, and the file is left exactly as it was.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from schema.db import DRIVER_ERRORS, RawKey, create_engine, create_sqlite_engine, open_encrypted
from schema.errors import (
    DatabaseUnreachable,
    ForeignDatabase,
    KeyNeeded,
    KeyRefused,
    NotADatabase,
    NotEncrypted,
)

Kind = Literal["device", "server"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_MAGIC = b"SQLite format 3\x00"


def alembic_config(kind: Kind, connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("path_separator", "os")
    config.set_main_option("script_location", str(MIGRATIONS / kind))
    config.set_main_option("version_locations", str(MIGRATIONS / kind / "versions"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def script_directory(kind: Kind) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(kind))


def head_revision(kind: Kind) -> str:
    head = script_directory(kind).get_current_head()
    assert head is not None
    return head


def _known_revisions(kind: Kind) -> set[str]:
    return {rev.revision for rev in script_directory(kind).walk_revisions()}


def is_plaintext_sqlite(path: Path) -> bool:
    """Whether ``path`` starts with SQLite's header (an encrypted file starts with its salt)."""
    with path.open("rb") as fh:
        return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def check_device_file(path: Path, key: RawKey | None = None) -> None:
    """Refuse a file that kensa must not touch; accept a missing, empty or kensa file.

    With ``key`` the file must be an encrypted kensa database that this key opens; without one,
    a plaintext kensa database (development). Either way nothing is written: a wrong key, a
    plaintext file where an encrypted one is expected, or an encrypted one without a key stops
    here with the file exactly as it was.
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    if path.is_dir():
        raise NotADatabase(f"{path} is a directory, not a database file")
    with path.open("rb") as fh:
        header = fh.read(len(SQLITE_MAGIC))
    if key is not None and header == SQLITE_MAGIC:
        raise NotEncrypted(
            f"{path} is a plaintext database and this tablet has a data key: encrypt it with "
            f"'kensa db encrypt' (or, for development only, start with KENSA_PLAINTEXT=1)"
        )
    if key is None and header != SQLITE_MAGIC:
        raise KeyNeeded(
            f"{path} is not a SQLite database (its first bytes are {header[:8]!r}): if it is "
            f"an encrypted kensa database, it opens only with this tablet's data key"
        )
    try:
        # mode=ro: looking must never change the file, whatever it turns out to be.
        conn: Any = (
            open_encrypted(path, key, read_only=True)
            if key is not None
            else sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        )
        try:
            check = conn.execute("PRAGMA quick_check").fetchall()
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master"
                    " WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            }
            revisions: set[str] = set()
            if "alembic_version" in tables:
                revisions = {
                    row[0] for row in conn.execute("SELECT version_num FROM alembic_version")
                }
        finally:
            conn.close()
    except KeyRefused:
        raise
    except DRIVER_ERRORS as exc:
        raise NotADatabase(f"{path} is corrupt or not a SQLite database: {exc}") from exc
    if check != [("ok",)]:
        problems = "; ".join(str(row[0]) for row in check[:3])
        raise NotADatabase(f"{path} is corrupt (integrity check: {problems})")
    _check_revisions(path, "device", tables, revisions)


def _check_revisions(where: object, kind: Kind, tables: set[str], revisions: set[str]) -> None:
    if not tables:
        return
    if "alembic_version" not in tables:
        shown = ", ".join(sorted(tables)[:5])
        raise ForeignDatabase(
            f"{where} already holds tables that kensa did not make ({shown}); "
            f"refusing to migrate another application's database"
        )
    unknown = revisions - _known_revisions(kind)
    if unknown:
        raise ForeignDatabase(
            f"{where} is at schema revision {', '.join(sorted(unknown))}, which this kensa "
            f"does not know: it was made by a newer kensa or by another application"
        )


def upgrade_device(path: str | Path, revision: str = "head", *, key: RawKey | None = None) -> str:
    """Bring a device database to ``revision``, creating the file if needed (encrypted with
    ``key`` when one is given).

    Returns the revision the database is at afterwards.
    """
    path = Path(path)
    check_device_file(path, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_sqlite_engine(path, foreign_keys=False, key=key)
    try:
        return _run(engine, "device", "upgrade", revision)
    finally:
        engine.dispose()


def downgrade_device(path: str | Path, revision: str, *, key: RawKey | None = None) -> str:
    path = Path(path)
    check_device_file(path, key)
    engine = create_sqlite_engine(path, foreign_keys=False, key=key)
    try:
        return _run(engine, "device", "downgrade", revision)
    finally:
        engine.dispose()


def _server_engine(url: str) -> sa.Engine:
    # The embedded server's SQLite file is migrated like a device's: a table is altered by
    # rebuilding it, with the keys checked by ``_run`` before it commits.
    sqlite = sa.make_url(url).get_backend_name() == "sqlite"
    engine = create_engine(url, foreign_keys=False) if sqlite else create_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            revisions: set[str] = set()
            if "alembic_version" in tables:
                revisions = {
                    r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                }
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise DatabaseUnreachable(f"cannot reach the server database: {exc.orig}") from exc
    except sa.exc.DatabaseError as exc:
        engine.dispose()
        raise NotADatabase(f"the server database cannot be read: {exc.orig}") from exc
    try:
        _check_revisions(
            engine.url.render_as_string(hide_password=True), "server", tables, revisions
        )
    except Exception:
        engine.dispose()
        raise
    return engine


def upgrade_server(url: str, revision: str = "head") -> str:
    engine = _server_engine(url)
    try:
        return _run(engine, "server", "upgrade", revision)
    finally:
        engine.dispose()


def downgrade_server(url: str, revision: str) -> str:
    engine = _server_engine(url)
    try:
        return _run(engine, "server", "downgrade", revision)
    finally:
        engine.dispose()


def _run(engine: sa.Engine, kind: Kind, direction: str, revision: str) -> str:
    # One transaction for the whole run: a failure half-way leaves the schema as it was (SQLite
    # and PostgreSQL both have transactional DDL).
    with engine.begin() as conn:
        config = alembic_config(kind, conn)
        if direction == "upgrade":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)
        if conn.dialect.name == "sqlite":
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise NotADatabase(
                    f"migration left {len(broken)} rows with dangling foreign keys "
                    f"(first: {tuple(broken[0])}); nothing was changed"
                )
        return current_revision(conn) or "base"


def current_revision(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()

"""What a device holds, to tell whether a refused request left anything behind.

``State`` is the row count of every table of the device database plus every file under the data
directory's ``images`` and ``thumbnails`` folders (temporary ``.incoming-*`` files included).
Read through a separate read-only connection, so it sees what was committed and nothing else.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from schema.db import Database, create_sqlite_engine
from sidecar.services import auth
from tests.support.seed import PASSWORD, seed_device

DB_NAME = "kensa.db"


@dataclass(frozen=True)
class State:
    counts: dict[str, int]
    files: tuple[str, ...]


def table_counts(db_path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names
        }
    finally:
        conn.close()


def stored_files(data_dir: Path) -> tuple[str, ...]:
    found: list[str] = []
    for folder in ("images", "thumbnails"):
        root = data_dir / folder
        if root.exists():
            found += [str(p.relative_to(data_dir)) for p in root.rglob("*") if p.is_file()]
    return tuple(sorted(found))


def state(data_dir: Path) -> State:
    return State(table_counts(data_dir / DB_NAME), stored_files(data_dir))


@dataclass(frozen=True)
class Template:
    """A seeded device database and login tokens of ``tanaka`` and of the supervisor ``admin``
    that are valid in every copy."""

    path: Path
    token: str
    admin_token: str

    def copy_to(self, data_dir: Path) -> Path:
        data_dir.mkdir(parents=True, exist_ok=True)
        for source in self.path.parent.glob(f"{DB_NAME}*"):
            shutil.copy2(source, data_dir / source.name)
        return data_dir / DB_NAME


def make_template(folder: Path) -> Template:
    """Seed once, log in once: argon2 is deliberately slow, so tests copy this file instead."""
    path = folder / DB_NAME
    seed_device(path)
    db = Database(create_sqlite_engine(path))
    try:
        with db.atomic() as session:
            token = auth.login(session, "tanaka", PASSWORD).token
            admin_token = auth.login(session, "admin", PASSWORD).token
    finally:
        db.dispose()
    return Template(path, token, admin_token)

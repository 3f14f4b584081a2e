"""DDL snapshots of both schemas (``schema/sql/*.sql``), rendered from the models.

Reviewers read a schema change as a diff of plain SQL; a test keeps the snapshot equal to the
models, and another keeps the migrations equal to the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

import schema.device
import schema.server

Kind = Literal["device", "server"]

SQL_DIR = Path(__file__).resolve().parent / "sql"

_TARGETS: dict[Kind, tuple[MetaData, Dialect, str]] = {
    "device": (schema.device.metadata, sqlite.dialect(), "SQLite"),
    "server": (schema.server.metadata, postgresql.dialect(), "PostgreSQL"),  # type: ignore[no-untyped-call]
}


def render(kind: Kind) -> str:
    metadata, dialect, name = _TARGETS[kind]
    parts = [
        f"-- kensa {kind} database ({name}): generated from schema/{kind}.py by\n"
        f"-- `kensa db snapshot`; edit the models and a migration, never this file.\n"
    ]
    for table in metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect)).strip()
        parts.append(f"{ddl};\n")
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            parts.append(f"{str(CreateIndex(index).compile(dialect=dialect)).strip()};\n")
    return "\n".join(parts)


def path(kind: Kind) -> Path:
    return SQL_DIR / f"{kind}.sql"


def write(kind: Kind) -> Path:
    target = path(kind)
    target.write_text(render(kind), encoding="utf-8")
    return target

"""Statements the queue processor runs for every row, built once per table and dialect.

Building ``insert(t).values(**row)`` for each row costs more than the database takes to run it:
SQLAlchemy makes a new statement, coerces every value into a bound literal and computes a cache
key from all of them. A statement without values, executed with the row as its parameters, is
compiled once per set of columns and then only bound.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

# The WHERE parameter of ``update_by_id``: a name no column has, since a column's own name is
# taken by its SET value.
ID_PARAM = "_row_id"


@functools.cache
def insert_ignore(dialect: str, table: sa.Table) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id``: a row back when it was new."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing().returning(table.c.id)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing().returning(table.c.id)


@functools.cache
def update_by_id(table: sa.Table) -> sa.Update:
    """``UPDATE table SET <the parameters' columns> WHERE id = :_row_id``."""
    return sa.update(table).where(table.c.id == sa.bindparam(ID_PARAM))


def update_row(session: Any, table: sa.Table, key: Any, values: dict[str, Any]) -> None:
    session.execute(update_by_id(table), {ID_PARAM: key, **values})

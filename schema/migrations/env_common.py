"""What the device and server Alembic environments share.

Migrations are run programmatically (``schema.migrate``), which hands the environment an open
connection in ``config.attributes["connection"]``; there is no alembic.ini to keep in step.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import MetaData
from sqlmodel.sql.sqltypes import AutoString


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Revisions must not depend on SQLModel internals: its AutoString is a plain VARCHAR.
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def run(target_metadata: MetaData, *, render_as_batch: bool) -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run kensa's migrations through schema.migrate (kensa db upgrade)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=render_as_batch,
        compare_type=True,
        compare_server_default=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()

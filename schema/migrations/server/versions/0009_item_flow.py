"""inspection_items_master: analyse on attach, and the defect types an item offers

``auto_analyse``: a tablet queues an AI item's pipeline as soon as a photo is attached; true
for every existing item. ``defect_types``: the defect types that can occur on the item
(``schema.formats.defects``, checked at publish); null, as on every existing row, offers them
all. Both travel to the tablets with the item.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 06:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("inspection_items_master") as batch:
        batch.add_column(
            sa.Column("auto_analyse", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("defect_types", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inspection_items_master") as batch:
        batch.drop_column("defect_types")
        batch.drop_column("auto_analyse")

"""Masters: the product's and each item's name in English

``product_name_en`` and ``item_name_en``, published with the masters and pulled by the tablets,
whose UI in English shows them; null, as on every existing row, leaves the (Japanese) name to
serve both languages.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 06:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inspection_targets_master") as batch:
        batch.add_column(sa.Column("product_name_en", sa.String(length=255), nullable=True))
    with op.batch_alter_table("inspection_items_master") as batch:
        batch.add_column(sa.Column("item_name_en", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inspection_items_master") as batch:
        batch.drop_column("item_name_en")
    with op.batch_alter_table("inspection_targets_master") as batch:
        batch.drop_column("product_name_en")

"""users.origin: the server registration a pulled user came from

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 17:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("origin", sa.String(), nullable=True))
    # Users pulled before this column existed came through the registration the tablet holds now.
    op.execute(
        "UPDATE users SET origin = (SELECT value FROM system_config "
        "WHERE key = 'sync.device_id') WHERE server_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("origin")

"""tauri_sync_queue: each device's pending rows by sequence

The changes feed tells each device the highest sequence of its own that is applied: everything
below its lowest sequence still pending. This partial index answers that with one probe per
device; it holds only pending rows, as ``idx_tauri_sync_queue_unprocessed`` does.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "tauri_sync_queue"
INDEX = "idx_tauri_sync_queue_device_pending"


def upgrade() -> None:
    op.create_index(
        INDEX,
        TABLE,
        ["device_id", "seq"],
        postgresql_where=sa.text("processed_at IS NULL"),
        sqlite_where=sa.text("processed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)

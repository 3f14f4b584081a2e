"""tauri_sync_queue: each device's pending rows in the order a processor applies them

A processor claims a batch from the devices it holds, in (priority DESC, created_at, id) order.
Without an index in that order it read and sorted every pending row of those devices for each
batch of 200: about 100 ms a claim with 600 rows pending per device, and more as an outage's
backlog grows. With it, each device gives up its first rows straight off the index. Like the
other queue indexes on pending rows, it holds only those.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 23:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "tauri_sync_queue"
INDEX = "idx_tauri_sync_queue_device_due"


def upgrade() -> None:
    op.create_index(
        INDEX,
        TABLE,
        ["device_id", sa.text("priority DESC"), "created_at", "id"],
        postgresql_where=sa.text("processed_at IS NULL"),
        sqlite_where=sa.text("processed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)

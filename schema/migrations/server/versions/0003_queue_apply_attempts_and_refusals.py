"""tauri_sync_queue: the server's own apply attempts, backoff and refusals

The processor counted its attempts in the device's ``retry_count`` and retried every row every
few seconds for ever. It now keeps its own count (``apply_attempts``), the time of the next try
(``next_attempt_at``), and marks rows that left the queue unapplied (``refusal``: conflict,
rejected, dead_letter) in a per-device order (``refusal_seq``) that devices pull after.
Conflicts recorded before this revision get their marker back, numbered by their queue id so the
cursors devices already hold stay valid.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import schema.types

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "tauri_sync_queue"
REFUSALS = "refusal IN ('conflict', 'rejected', 'dead_letter')"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # SQLite adds a CHECK only with its column (no ALTER TABLE ADD CONSTRAINT).
        op.execute(
            f"ALTER TABLE {TABLE} ADD COLUMN apply_attempts INTEGER DEFAULT '0' NOT NULL "
            "CONSTRAINT ck_sync_queue_apply_attempts CHECK (apply_attempts >= 0)"
        )
        op.add_column(
            TABLE, sa.Column("next_attempt_at", schema.types.UTCDateTime(timezone=True))
        )
        op.execute(
            f"ALTER TABLE {TABLE} ADD COLUMN refusal VARCHAR(20) "
            f"CONSTRAINT ck_sync_queue_refusal CHECK ({REFUSALS})"
        )
    else:
        op.add_column(
            TABLE,
            sa.Column("apply_attempts", sa.Integer(), server_default="0", nullable=False),
        )
        op.add_column(
            TABLE, sa.Column("next_attempt_at", schema.types.UTCDateTime(timezone=True))
        )
        op.add_column(TABLE, sa.Column("refusal", sa.String(length=20)))
        op.create_check_constraint("ck_sync_queue_apply_attempts", TABLE, "apply_attempts >= 0")
        op.create_check_constraint("ck_sync_queue_refusal", TABLE, REFUSALS)
    op.add_column(
        TABLE,
        sa.Column("refusal_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite")),
    )
    op.execute(
        "UPDATE tauri_sync_queue SET refusal = 'conflict', refusal_seq = id "
        "WHERE processed_at IS NOT NULL AND last_error LIKE 'conflict: %'"
    )
    op.create_index(
        "uq_sync_queue_device_refusal", TABLE, ["device_id", "refusal_seq"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_sync_queue_device_refusal", table_name=TABLE)
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("ck_sync_queue_refusal", TABLE, type_="check")
        op.drop_constraint("ck_sync_queue_apply_attempts", TABLE, type_="check")
    op.drop_column(TABLE, "refusal_seq")
    op.drop_column(TABLE, "refusal")
    op.drop_column(TABLE, "next_attempt_at")
    op.drop_column(TABLE, "apply_attempts")

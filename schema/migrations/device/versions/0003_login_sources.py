"""login_sources: lockout per user and client; the login-signing key leaves the database

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 10:00:00.000000
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


def upgrade() -> None:
    op.create_table(
        "login_sources",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", schema.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failed_at", schema.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", schema.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("failed_attempts >= 0", name="ck_login_sources_failed_attempts"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            ondelete="CASCADE",
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.PrimaryKeyConstraint("user_id", "source"),
    )
    # The key login tokens were signed with used to sit here, readable by anyone who can read the
    # data folder; it now lives outside it (sidecar.security). Removing it ends every login it
    # signed, forged ones included: inspectors log in once more.
    op.execute("DELETE FROM system_config WHERE key = 'auth.signing_key'")
    # The old per-user lock counted every client together; the counts start afresh per client.
    op.execute("UPDATE users SET failed_attempts = 0, locked_until = NULL")


def downgrade() -> None:
    op.drop_table("login_sources")

"""signatures: the tablets' electronic signatures, kept as they were made

A tablet now records a signature (the user's password entered again) for overriding an AI
verdict, releasing an NG item as OK, completing an inspection with NG items and discarding one,
and pushes it like its other records. The server keeps each one under its inspection: the signer
as the tablet knew them, the meaning, the record signed and that record's digest on the tablet.
It cannot check the password and does not try. The lists in the CHECKs are written out here, not
read from ``schema.formats.signatures``: a revision stays what it was.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 01:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import schema.types

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signatures",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("username", sa.String(length=150), nullable=True),
        sa.Column("full_name", sa.String(length=255), nullable=True),
        sa.Column("role", sa.String(length=50), nullable=False),
        sa.Column("meaning", sa.String(length=20), nullable=False),
        sa.Column("record_type", sa.String(length=50), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("record_digest", sa.String(length=64), nullable=False),
        sa.Column("signed_at", schema.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "received_at",
            schema.types.UTCDateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "meaning IN ('approved', 'overridden', 'released', 'discarded')",
            name="ck_signatures_meaning",
        ),
        sa.CheckConstraint(
            "record_type IN ('human_verification_result', 'inspection_session')",
            name="ck_signatures_record_type",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["inspection_sessions.id"], initially="DEFERRED", deferrable=True
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], initially="DEFERRED", deferrable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_signatures_session_id", "signatures", ["session_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_signatures_session_id", table_name="signatures")
    op.drop_table("signatures")

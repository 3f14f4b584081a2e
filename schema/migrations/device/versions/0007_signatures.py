"""signatures: re-entered credentials bound to a record

Overriding an AI verdict, releasing an NG item as OK, completing an inspection with NG items and
discarding one now need the user's password again (21 CFR 11.200). Each such signature is kept:
the signer as they were then (user, name, role), its meaning, and the record it signs with that
record's digest as written in the same transaction (``schema.formats.audit.row_digest``), so a
record changed afterwards no longer matches its signature. The lists in the CHECKs are written
out here, not read from ``schema.formats.signatures``: a revision stays what it was.

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
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("full_name", sa.String(), nullable=True),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("meaning", sa.String(), nullable=False),
        sa.Column("record_type", sa.String(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=False),
        sa.Column("record_digest", sa.String(), nullable=False),
        sa.Column(
            "signed_at",
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
        sa.CheckConstraint("length(record_digest) = 64", name="ck_signatures_record_digest"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["inspection_sessions.id"], initially="DEFERRED", deferrable=True
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], initially="DEFERRED", deferrable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_signatures_session_id", "signatures", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_signatures_session_id", table_name="signatures")
    op.drop_table("signatures")

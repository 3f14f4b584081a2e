"""Sync acknowledgements: how far each inspection got, and what the server refused

``inspection_sync`` keeps, per inspection, the highest outbox sequence of its own the server has
received; with the server's applied watermark it tells "on this tablet", "received" and "applied
on the server" apart. ``sync_refusals`` keeps each operation the server stored and will never
apply, with the reason code and, for a version conflict, the server's version of the record, so
a supervisor can choose between both without a connection. Inspections recorded before this
revision have already left the outbox or still wait in it: they start at sequence 0, and those
still waiting read as on this tablet from their outbox rows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import schema.types

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inspection_sync",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("received_through_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.execute(
        "INSERT INTO inspection_sync (session_id, received_through_seq) "
        "SELECT id, 0 FROM inspection_sessions"
    )
    op.create_table(
        "sync_refusals",
        sa.Column("op_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("entity_type", sa.String(), nullable=False),
        sa.Column("entity_id", sa.String(), nullable=False),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("reason_code", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("server_data", sa.JSON(), nullable=True),
        sa.Column(
            "refused_at",
            schema.types.UTCDateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("resolved_at", schema.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(), nullable=True),
        sa.Column("resolved_by", sa.String(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('conflict', 'rejected', 'dead_letter')", name="ck_sync_refusals_kind"
        ),
        sa.CheckConstraint(
            "resolution IS NULL OR resolution IN ('keep_tablet', 'keep_server')",
            name="ck_sync_refusals_resolution",
        ),
        sa.PrimaryKeyConstraint("op_id"),
    )
    op.create_index("ix_sync_refusals_entity_id", "sync_refusals", ["entity_id"])


def downgrade() -> None:
    op.drop_index("ix_sync_refusals_entity_id", table_name="sync_refusals")
    op.drop_table("sync_refusals")
    op.drop_table("inspection_sync")

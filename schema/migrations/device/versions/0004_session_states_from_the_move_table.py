"""inspection_sessions.status: the move table's states only, starting at 'scanning'

The session status CHECK listed the seed's default 'pending' beside the workflow's states: a
state no move reaches or leaves, which the server and the sidecar would not know what to do
with. A session still in it (kensa never writes one) becomes 'scanning', where an inspection
starts, and the column's default follows. The lists are written out here, not read from
``schema.formats.workflow``: a revision stays what it was when the table changes, and a test
compares the migrated database's CHECK with the table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 18:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = (
    "'scanning', 'identified', 'in_progress', 'ai_completed', 'human_review', 'completed', "
    "'failed', 'cancelled', 'product_not_found', 'qr_decode_failed'"
)


def _recreate(states: str, default: str) -> None:
    with op.batch_alter_table("inspection_sessions", recreate="always") as batch:
        batch.drop_constraint("ck_sessions_status", type_="check")
        batch.create_check_constraint("ck_sessions_status", sa.text(f"status IN ({states})"))
        batch.alter_column(
            "status",
            existing_type=sa.String(),
            existing_nullable=False,
            server_default=default,
        )


def upgrade() -> None:
    op.execute("UPDATE inspection_sessions SET status = 'scanning' WHERE status = 'pending'")
    _recreate(STATES, "scanning")


def downgrade() -> None:
    _recreate(f"{STATES}, 'pending'", "pending")

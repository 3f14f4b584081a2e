"""status columns: the move table's states only

The server refused a pushed session or item status outside the move table in code (push, and
the queue processor for rows queued before push did), but ``inspection_sessions.status`` and
``inspection_session_items.status`` took any text: whatever else writes them (a repair by hand,
a later code path) could store a state no tablet knows. Both get the CHECK the device database
has. The lists are written out here, not read from ``schema.formats.workflow``: a revision stays
what it was when the table changes, and a test compares the migrated database's CHECKs with the
table.

Rows already outside the lists: a session in 'pending' (the seed's default, which devices
before their own revision 0004 could push) becomes 'scanning', where an inspection starts — the
device made the same change to its own copy. Any other value no kensa device ever sent; the
upgrade stops, naming the table, the values and how many rows hold each, and changes nothing
(the migration runs in one transaction), so that those rows are looked at rather than guessed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 01:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schema.errors import SchemaError

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SESSION_STATES = (
    "'scanning', 'identified', 'in_progress', 'ai_completed', 'human_review', 'completed', "
    "'failed', 'cancelled', 'product_not_found', 'qr_decode_failed'"
)
ITEM_STATES = "'pending', 'captured', 'ai_running', 'ai_completed', 'verified', 'skipped', 'failed'"

CHECKS = (
    ("inspection_sessions", "ck_sessions_status", SESSION_STATES),
    ("inspection_session_items", "ck_session_items_status", ITEM_STATES),
)


class StatusOutsideTheMoveTable(SchemaError):
    """Rows whose status no move table state names: the upgrade stops and changes nothing."""


def _outside(table: str, states: str) -> str | None:
    found = (
        op.get_bind()
        .execute(
            sa.text(
                f"SELECT status, COUNT(*) FROM {table} WHERE status NOT IN ({states}) "  # noqa: S608
                "GROUP BY status ORDER BY status"
            )
        )
        .all()
    )
    if not found:
        return None
    listed = ", ".join(
        f"{status!r} ({count} row{'' if count == 1 else 's'})" for status, count in found
    )
    return f"{table}.status holds values that are not inspection states: {listed}"


def upgrade() -> None:
    op.execute("UPDATE inspection_sessions SET status = 'scanning' WHERE status = 'pending'")
    problems = [p for table, _, states in CHECKS if (p := _outside(table, states)) is not None]
    if problems:
        raise StatusOutsideTheMoveTable(
            f"{'; '.join(problems)}; correct or remove those rows and upgrade again (nothing "
            "was changed)"
        )
    for table, name, states in CHECKS:
        # SQLite (the embedded server) adds a CHECK by rebuilding the table; PostgreSQL alters it.
        with op.batch_alter_table(table) as batch:
            batch.create_check_constraint(name, sa.text(f"status IN ({states})"))


def downgrade() -> None:
    for table, name, _ in reversed(CHECKS):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(name, type_="check")

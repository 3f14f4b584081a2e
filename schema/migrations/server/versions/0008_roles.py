"""users.role: inspector, supervisor, admin

A third role, ``supervisor``, for whoever oversees a shift on the floor (every inspection on a
tablet, re-judging after completion, discarding another's work, set-aside operations); tablets
pull it with the users. ``admin`` stays the site's administrator, as it is on this server: it
publishes masters and manages users and devices (``/admin/v1``), and on a tablet it keeps every
right it had there (``sidecar.domain.access``).

Existing ``admin`` rows stay ``admin``: turning them into supervisors would take the admin API
from every site's administrators, and every user must keep being able to do what they could.
No row changes; the CHECK lets ``supervisor`` in, and an administrator gives it
(``kensa-server user update NAME --role supervisor``).

Downgrading turns supervisors into inspectors, not admins: here ``admin`` is the admin API,
which a supervisor never had. The list is written out, not read from ``schema.formats.roles``:
a revision stays what it was when the list changes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 01:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _check(roles: str) -> None:
    # ALTER TABLE on PostgreSQL; on the embedded SQLite default, the table is rebuilt.
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("ck_users_role", type_="check")
        batch.create_check_constraint("ck_users_role", sa.text(f"role IN ({roles})"))


def upgrade() -> None:
    _check("'inspector', 'supervisor', 'admin'")


def downgrade() -> None:
    op.execute("UPDATE users SET role = 'inspector' WHERE role = 'supervisor'")
    _check("'inspector', 'admin'")

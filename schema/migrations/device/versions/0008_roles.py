"""users.role: inspector, supervisor, admin

A third role, ``supervisor``, for whoever oversees a shift: every inspection on the tablet,
re-judging after completion, discarding another's work, the operations the server set aside.
Until now ``admin`` was that supervisor and also the one who connects the tablet; from here on
``admin`` is the site's administrator (the tablet's connection, users, settings).

Existing ``admin`` rows stay ``admin``: on the server the same role publishes masters and manages
users and devices, and every user must keep being able to do what they could. The new ``admin``
keeps every right the old one had (see every inspection, discard or restart another's, bring
in a pipeline's result, lift a lockout, connect the tablet); it only lacks the supervisor's new
ones, such as re-judging after completion (``sidecar.domain.access``). So no row changes here;
the CHECK lets ``supervisor`` in, and the server gives that role to whom it chooses.

Downgrading turns supervisors into ``admin``, the role that meant supervisor before: they keep
seeing and clearing the shift's inspections. The list is written out, not read from
``schema.formats.roles``: a revision stays what it was when the list changes, and a test
compares the migrated database's CHECK with it.

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
    with op.batch_alter_table("users", recreate="always") as batch:
        batch.drop_constraint("ck_users_role", type_="check")
        batch.create_check_constraint("ck_users_role", sa.text(f"role IN ({roles})"))


def upgrade() -> None:
    _check("'inspector', 'supervisor', 'admin'")


def downgrade() -> None:
    op.execute("UPDATE users SET role = 'admin' WHERE role = 'supervisor'")
    _check("'inspector', 'admin'")

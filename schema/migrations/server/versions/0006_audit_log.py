"""audit_log: each device's chain, verified on arrival, and the server's own

A record is evidence only if one can tell who made it and whether it changed since. Tablets now
keep a hash-chained audit log (``schema.formats.audit``) that reaches the server like every other
record; the server keeps every chain's entries once each, as the canonical bytes that were hashed
(``audit_log``), and the verdict on each chain as its entries arrive (``audit_chains``). The
server's own administration (masters, users, devices) is written to a chain of its own.

Who did what: ``created_by`` / ``updated_by`` on the records applied from devices (from the user
their operation names) and on the masters (the admin who published them); the masters that had
``created_by`` get ``updated_by``. Results are never edited in place any more: a correction is a
new row naming the one it corrects (``supersedes``, unique, so a result's versions are one line).
Rows stored before this revision keep NULL in all of these: who made them was not recorded, and
nothing is invented for them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 01:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import schema.types

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# (table, columns naming a user) added here.
BY_USER = (
    ("users", ("created_by", "updated_by")),
    ("pipelines", ("updated_by",)),
    ("inspection_targets_master", ("updated_by",)),
    ("inspection_items_master", ("created_by", "updated_by")),
    ("inspection_targets", ("created_by", "updated_by")),
    ("inspection_sessions", ("created_by", "updated_by")),
    ("inspection_session_items", ("created_by", "updated_by")),
    ("inspection_images", ("created_by", "updated_by")),
    ("ai_inspection_results", ("created_by", "updated_by")),
    ("human_verification_results", ("created_by", "updated_by")),
)
VERSIONED_RESULTS = ("ai_inspection_results", "human_verification_results")


def _fk(table: str, column: str) -> str:
    return f"fk_{table}_{column}"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, columns in BY_USER:
        for column in columns:
            op.add_column(table, sa.Column(column, sa.Uuid(), nullable=True))
            if not sqlite:  # SQLite adds no constraint to an existing table
                op.create_foreign_key(_fk(table, column), table, "users", [column], ["id"],
                                      deferrable=True, initially="DEFERRED")
    for table in VERSIONED_RESULTS:
        op.add_column(table, sa.Column("supersedes", sa.Uuid(), nullable=True))
        if not sqlite:
            op.create_foreign_key(_fk(table, "supersedes"), table, table, ["supersedes"], ["id"],
                                  deferrable=True, initially="DEFERRED")
            op.create_unique_constraint(f"{table}_supersedes_key", table, ["supersedes"])
        else:
            op.create_index(f"{table}_supersedes_key", table, ["supersedes"], unique=True)

    op.create_table(
        "audit_log",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("seq", BigInt, nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=True),
        sa.Column("at", sa.String(length=40), nullable=True),
        sa.Column("username", sa.String(length=150), nullable=True),
        sa.Column("entity", sa.String(length=100), nullable=True),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=50), nullable=True),
        sa.Column("row_digest", sa.String(length=64), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("canonical", sa.LargeBinary(), nullable=False),
        sa.Column(
            "received_at",
            schema.types.UTCDateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("seq > 0", name="ck_audit_log_seq"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], initially="DEFERRED", deferrable=True
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain", "seq", name="uq_audit_log_chain_seq"),
    )
    op.create_index("idx_audit_log_entity", "audit_log", ["entity", "entity_id"], unique=False)
    op.create_table(
        "audit_chains",
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("last_seq", BigInt, server_default="0", nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="ok", nullable=False),
        sa.Column("broken_seq", BigInt, nullable=True),
        sa.Column("broken_reason", sa.String(), nullable=True),
        sa.Column(
            "updated_at",
            schema.types.UTCDateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("status IN ('ok', 'broken')", name="ck_audit_chains_status"),
        sa.CheckConstraint("last_seq >= 0", name="ck_audit_chains_last_seq"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], initially="DEFERRED", deferrable=True
        ),
        sa.PrimaryKeyConstraint("chain"),
    )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_table("audit_chains")
    op.drop_index("idx_audit_log_entity", table_name="audit_log")
    op.drop_table("audit_log")
    for table in VERSIONED_RESULTS:
        if sqlite:
            op.drop_index(f"{table}_supersedes_key", table_name=table)
        else:
            op.drop_constraint(f"{table}_supersedes_key", table, type_="unique")
            op.drop_constraint(_fk(table, "supersedes"), table, type_="foreignkey")
        op.drop_column(table, "supersedes")
    for table, columns in reversed(BY_USER):
        for column in reversed(columns):
            if not sqlite:
                op.drop_constraint(_fk(table, column), table, type_="foreignkey")
            op.drop_column(table, column)

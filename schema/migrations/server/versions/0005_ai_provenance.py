"""ai results: where an AI result came from, and whether its models are known

What the tablet's job runner records of a model run travels with the result: the SHA-256 of every
model the pipeline ran and of the photo, the engine's version, the execution provider and the
per-step timings. When a result is applied the server compares its model hashes with the model
files it published: ``models_known`` is false, with the hashes it does not know in
``unknown_models``, for a result made by a model that never came from this server. All nullable:
results applied before this revision carry none of it.

``confidence`` becomes nullable: a model that gives no confidence has none, and the tablet no
longer invents one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 01:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("ai_inspection_results") as batch:
        batch.alter_column("confidence", existing_type=sa.Float(), nullable=True)
        batch.add_column(sa.Column("model_hashes", _json(), nullable=True))
        batch.add_column(sa.Column("image_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("engine_version", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("execution_provider", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("step_timings", _json(), nullable=True))
        batch.add_column(sa.Column("models_known", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("unknown_models", _json(), nullable=True))


def downgrade() -> None:
    missing = op.get_bind().execute(
        sa.text("SELECT count(*) FROM ai_inspection_results WHERE confidence IS NULL")
    ).scalar_one()
    if missing:
        raise RuntimeError(
            f"{missing} AI results have no confidence; the schema before revision 0005 cannot"
            " hold them"
        )
    with op.batch_alter_table("ai_inspection_results") as batch:
        for column in (
            "unknown_models",
            "models_known",
            "step_timings",
            "execution_provider",
            "engine_version",
            "image_sha256",
            "model_hashes",
        ):
            batch.drop_column(column)
        batch.alter_column("confidence", existing_type=sa.Float(), nullable=False)

"""ai_inspection_results: where an AI result came from, and no invented confidence

An AI result is evidence of a model run on the tablet, so it now carries what identifies that
run: the SHA-256 of every model the pipeline ran (``model_hashes``) and of the photo it was given
(``image_sha256``), the engine (``engine_version``: kensa's and ONNX Runtime's versions), the
execution provider the ONNX Runtime sessions actually got (``execution_provider``) and each step
as the engine timed it (``step_timings``). They are nullable: results written before this
revision were made without them, and nothing can recover them now.

``confidence`` becomes nullable: a rule with no confidence of the model's own used to store 1.0,
which the UI showed as "100 %". Existing values are kept as they are: which of them were
invented cannot be told from the row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 01:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ai_inspection_results", recreate="always") as batch:
        batch.alter_column("confidence", existing_type=sa.Float(), nullable=True)
        batch.add_column(sa.Column("model_hashes", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("image_sha256", sa.String(), nullable=True))
        batch.add_column(sa.Column("engine_version", sa.String(), nullable=True))
        batch.add_column(sa.Column("execution_provider", sa.String(), nullable=True))
        batch.add_column(sa.Column("step_timings", sa.JSON(), nullable=True))
        batch.create_check_constraint(
            "ck_ai_results_image_sha256",
            sa.text("image_sha256 IS NULL OR length(image_sha256) = 64"),
        )


def downgrade() -> None:
    # A result with no confidence cannot go back to a NOT NULL column without inventing one.
    missing = op.get_bind().execute(
        sa.text("SELECT count(*) FROM ai_inspection_results WHERE confidence IS NULL")
    ).scalar_one()
    if missing:
        raise RuntimeError(
            f"{missing} AI results have no confidence; the schema before revision 0005 cannot"
            " hold them"
        )
    with op.batch_alter_table("ai_inspection_results", recreate="always") as batch:
        batch.drop_constraint("ck_ai_results_image_sha256", type_="check")
        for column in (
            "step_timings",
            "execution_provider",
            "engine_version",
            "image_sha256",
            "model_hashes",
        ):
            batch.drop_column(column)
        batch.alter_column("confidence", existing_type=sa.Float(), nullable=False)

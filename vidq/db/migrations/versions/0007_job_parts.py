"""Chunked encoding: `job_parts`, the parts of a job's video that workers claim one by one.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_parts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("start_frame", sa.Integer(), nullable=False),
        sa.Column("end_frame", sa.Integer(), nullable=True),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("recipe", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(36), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker_id", sa.String(100), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("output_key", sa.String(300), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name="fk_job_parts_job_id_jobs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_job_parts"),
    )
    op.create_index("ix_job_parts_job_idx", "job_parts", ["job_id", "idx"], unique=True)
    op.create_index("ix_job_parts_status_lease", "job_parts", ["status", "lease_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_job_parts_status_lease", table_name="job_parts")
    op.drop_index("ix_job_parts_job_idx", table_name="job_parts")
    op.drop_table("job_parts")

"""Job priorities: a `priority` column and the indexes that order the queue by it.

`ix_jobs_status_priority_seq` serves the claim (highest priority, then oldest) and
queue places; `ix_jobs_owner_status_priority` and `ix_jobs_owner_started` serve fair
share (an owner's running count, its best queued job and its latest start).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), server_default="0", nullable=False))
    op.create_index(
        "ix_jobs_status_priority_seq",
        "jobs",
        ["status", sa.column("priority").desc(), "seq"],
    )
    op.create_index(
        "ix_jobs_owner_status_priority", "jobs", ["owner_id", "status", "priority", "seq"]
    )
    started = sa.column("started_at").is_not(None)
    op.create_index(
        "ix_jobs_owner_started",
        "jobs",
        ["owner_id", "started_at"],
        postgresql_where=started,
        sqlite_where=started,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_owner_started", table_name="jobs")
    op.drop_index("ix_jobs_owner_status_priority", table_name="jobs")
    op.drop_index("ix_jobs_status_priority_seq", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("priority")

"""Inputs fetched from a source_url and resumable (tus) uploads.

A job's input columns may be NULL until a worker has fetched and probed its
`source_url`; `uploads` holds resumable uploads.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_KNOWN_LATER = (
    ("input_content_type", sa.String(length=200)),
    ("input_size_bytes", sa.BigInteger()),
    ("input_sha256", sa.String(length=64)),
    ("input_info", sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name, type_ in _KNOWN_LATER:
            batch.alter_column(name, existing_type=type_, nullable=True)
        batch.add_column(sa.Column("source_url", sa.String(length=2048), nullable=True))
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("length_bytes", sa.BigInteger(), nullable=False),
        sa.Column("offset_bytes", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=True),
        sa.Column("content_type", sa.String(length=200), nullable=True),
        sa.Column("upload_metadata", sa.Text(), nullable=True),
        sa.Column("store_state", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lock_token", sa.String(length=36), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
            name=op.f("fk_uploads_owner_id_owners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
        sa.UniqueConstraint("job_id", name=op.f("uq_uploads_job_id")),
    )
    with op.batch_alter_table("uploads") as batch:
        batch.create_index(batch.f("ix_uploads_owner_id"), ["owner_id"], unique=False)
        batch.create_index("ix_uploads_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("uploads")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("source_url")
        for name, type_ in _KNOWN_LATER:
            batch.alter_column(name, existing_type=type_, nullable=False)

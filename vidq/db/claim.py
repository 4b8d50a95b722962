"""The one query whose SQL differs by dialect: taking the next queued job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vidq.db.models import Job


async def claim_oldest_queued(
    conn: AsyncConnection, *, values: dict[str, Any], now: datetime
) -> Job | None:
    """Move the next queued job (highest priority, then oldest) to running with `values`,
    atomically; return its row."""
    stmt = claim_statement(conn.dialect.name, {**values, "updated_at": now})
    row = (await conn.execute(stmt)).mappings().first()
    return Job.from_row(row) if row else None


def claim_statement(dialect: str, values: dict[str, Any]) -> Any:
    """The UPDATE … RETURNING that claims the next queued job.

    PostgreSQL: the sub-select locks one row with FOR UPDATE SKIP LOCKED, so concurrent
    workers each get a different job without waiting. SQLite: the caller's write
    transaction began IMMEDIATE, so the database's single writer makes this atomic.
    Both walk `ix_jobs_status_priority_seq` (status, priority DESC, seq) and stop at
    the first row.
    """
    oldest = (
        select(Job.seq)
        .where(Job.status == "queued")
        .order_by(Job.priority.desc(), Job.seq)
        .limit(1)
    )
    if dialect == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    return (
        update(Job)
        .where(Job.seq == oldest.scalar_subquery(), Job.status == "queued")
        .values(**values)
        .returning(*Job.__table__.columns)
    )

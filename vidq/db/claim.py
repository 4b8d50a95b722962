"""The one query whose SQL differs by dialect: taking the oldest queued job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vidq.db.models import Job


async def claim_oldest_queued(
    conn: AsyncConnection, *, values: dict[str, Any], now: datetime
) -> Job | None:
    """Move the oldest queued job to running with `values`, atomically; return its row.

    PostgreSQL: the sub-select locks one row with FOR UPDATE SKIP LOCKED, so concurrent
    workers each get a different job without waiting. SQLite: the caller's write
    transaction began IMMEDIATE, so the database's single writer makes this atomic.
    """
    oldest = select(Job.seq).where(Job.status == "queued").order_by(Job.seq).limit(1)
    if conn.dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    stmt = (
        update(Job)
        .where(Job.seq == oldest.scalar_subquery(), Job.status == "queued")
        .values(**values, updated_at=now)
        .returning(*Job.__table__.columns)
    )
    row = (await conn.execute(stmt)).mappings().first()
    return Job.from_row(row) if row else None

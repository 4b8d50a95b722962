"""The one query whose SQL differs by dialect: taking the oldest queued job."""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import Update, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vidq.db.models import Job


@functools.cache
def _claim_statement(dialect: str) -> Update:
    """The claim, built once per dialect: building a statement costs the process more than
    the database spends running this one. Its parameters: `lease_token`, `lease_expires_at`,
    `worker_id` and `now`.

    PostgreSQL: the sub-select locks one row with FOR UPDATE SKIP LOCKED, so concurrent
    workers each get a different job without waiting. SQLite: the caller's write
    transaction began IMMEDIATE, so the database's single writer makes this atomic.
    """
    columns = Job.__table__.c
    now = bindparam("now", type_=columns.updated_at.type)
    oldest = select(Job.seq).where(Job.status == "queued").order_by(Job.seq).limit(1)
    if dialect == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    return (
        update(Job)
        .where(Job.seq == oldest.scalar_subquery(), Job.status == "queued")
        .values(
            status="running",
            lease_token=bindparam("lease_token", type_=columns.lease_token.type),
            lease_expires_at=bindparam("lease_expires_at", type_=columns.lease_expires_at.type),
            worker_id=bindparam("worker_id", type_=columns.worker_id.type),
            attempts=columns.attempts + 1,
            started_at=func.coalesce(columns.started_at, now),
            progress_percent=0.0,
            eta_seconds=None,
            updated_at=now,
        )
        .returning(*columns)
    )


async def claim_oldest_queued(
    conn: AsyncConnection,
    *,
    worker_id: str,
    lease_token: str,
    lease_expires_at: datetime,
    now: datetime,
) -> Job | None:
    """Move the oldest queued job to running under this lease, counting an attempt,
    atomically; return its row."""
    parameters = {
        "worker_id": worker_id,
        "lease_token": lease_token,
        "lease_expires_at": lease_expires_at,
        "now": now,
    }
    result = await conn.execute(_claim_statement(conn.dialect.name), parameters)
    row = result.mappings().first()
    return Job.from_row(row) if row else None

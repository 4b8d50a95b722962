"""Retention: which outputs have expired and which stored files no job owns any more."""

from __future__ import annotations

from sqlalchemy import and_, select, update

from vidq.db.database import Database
from vidq.db.models import Job, table_of
from vidq.jobs.queue import utcnow
from vidq.jobs.states import UNFINISHED, JobStatus

jobs = table_of(Job)


async def expire_outputs(db: Database) -> list[str]:
    """Mark completed jobs past `expires_at` as expired; return their output keys to delete."""
    now = utcnow()
    due = and_(
        jobs.c.status == JobStatus.COMPLETED.value,
        jobs.c.expired.is_(False),
        jobs.c.expires_at <= now,
    )
    async with db.write() as conn:
        rows = (
            await conn.execute(
                update(jobs)
                .where(due)
                .values(expired=True, updated_at=now)
                .returning(jobs.c.output_key)
            )
        ).all()
    return [key for (key,) in rows if key]


async def owned_keys(db: Database) -> set[str]:
    """Every stored key a job still needs: inputs of unfinished jobs, unexpired outputs."""
    async with db.read() as conn:
        inputs = (await conn.execute(select(jobs.c.id).where(jobs.c.status.in_(UNFINISHED)))).all()
        outputs = (
            await conn.execute(
                select(jobs.c.output_key).where(
                    jobs.c.status == JobStatus.COMPLETED.value,
                    jobs.c.expired.is_(False),
                    jobs.c.output_key.is_not(None),
                )
            )
        ).all()
    return {f"inputs/{job_id}" for (job_id,) in inputs} | {key for (key,) in outputs}

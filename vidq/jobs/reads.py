"""Reading jobs: one by id, an owner's page, queue places and counts. No writes here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vidq.db.database import Database
from vidq.db.models import Job, table_of
from vidq.errors import NotFound, TooManyJobs
from vidq.jobs.fair_position import fair_share_place, moves_others
from vidq.jobs.states import UNFINISHED, JobStatus
from vidq.jobs.strict import is_job_id

jobs = table_of(Job)


def require_job_id(job_id: str) -> None:
    """NotFound unless `job_id` has the shape of a job id: a malformed one names no job,
    whatever bytes it holds, and is never looked up."""
    if not is_job_id(job_id):
        raise NotFound("No such job: a job id is a UUID.")


async def get(db: Database, job_id: str, owner_id: str | None = None) -> Job:
    """A job by id, seen by its owner (or by the service when owner_id is None)."""
    require_job_id(job_id)
    stmt = select(jobs).where(jobs.c.id == job_id)
    if owner_id is not None:
        stmt = stmt.where(jobs.c.owner_id == owner_id)
    async with db.read() as conn:
        row = (await conn.execute(stmt)).mappings().first()
    if row is None:
        raise NotFound(f"No job {job_id}.")
    return Job.from_row(row)


async def queue_position(db: Database, job: Job, *, fair_share: bool = False) -> int | None:
    """1 for the next job to start, while queued; else None. Exact in priority order
    (higher first, then oldest); an estimate under fair share (`fair_position`)."""
    if job.status != JobStatus.QUEUED:
        return None
    stmt = select(place_statement(job.priority, job.seq))
    async with db.read() as conn:
        if fair_share:
            return await fair_share_place(conn, job)
        ahead_and_self = int((await conn.execute(stmt)).scalar_one())
    # 0 means a worker took the job since `job` was read: it was next in line.
    return max(1, ahead_and_self)


async def queuing_moved_others(db: Database, job: Job, *, fair_share: bool) -> bool:
    """Whether queuing `job` moved other queued jobs' places (their feeds then re-read)."""
    async with db.read() as conn:
        return await moves_others(conn, job, fair_share=fair_share)


def place_statement(priority: int, seq: int) -> Any:
    """How many queued jobs start before the job (`priority`, `seq`), itself included: two
    counts, each a range of `ix_jobs_status_priority_seq`."""
    queued = jobs.c.status == JobStatus.QUEUED.value
    higher = select(func.count()).where(queued, jobs.c.priority > priority)
    same = select(func.count()).where(queued, jobs.c.priority == priority, jobs.c.seq <= seq)
    return higher.scalar_subquery() + same.scalar_subquery()


async def queue_positions(db: Database, page: Sequence[Job]) -> dict[str, int]:
    """`queue_position` of each queued job of `page`, by id, in one query."""
    queued = [job.id for job in page if job.status == JobStatus.QUEUED]
    if not queued:
        return {}
    ahead = jobs.alias("ahead")
    places = (
        select(func.count())
        .where(
            ahead.c.status == JobStatus.QUEUED.value,
            (ahead.c.priority > jobs.c.priority)
            | ((ahead.c.priority == jobs.c.priority) & (ahead.c.seq <= jobs.c.seq)),
        )
        .scalar_subquery()
    )
    stmt = select(jobs.c.id, places).where(jobs.c.id.in_(queued))
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
    # 0 means a worker took the job since the page was read: it was next in line.
    found = {str(job_id): max(1, int(count)) for job_id, count in rows}
    return {job_id: found.get(job_id, 1) for job_id in queued}


async def list_jobs(
    db: Database, owner_id: str, *, statuses: Sequence[str], limit: int, before_seq: int | None
) -> tuple[list[Job], int | None]:
    """An owner's jobs, newest first; returns the page and the seq to continue before."""
    stmt = select(jobs).where(jobs.c.owner_id == owner_id)
    if statuses:
        stmt = stmt.where(jobs.c.status.in_(list(statuses)))
    if before_seq is not None:
        stmt = stmt.where(jobs.c.seq < before_seq)
    stmt = stmt.order_by(jobs.c.seq.desc()).limit(limit + 1)
    async with db.read() as conn:
        rows = [Job.from_row(r) for r in (await conn.execute(stmt)).mappings()]
    more = len(rows) > limit
    page = rows[:limit]
    return page, (page[-1].seq if more and page else None)


async def unfinished_ids(db: Database, owner_id: str) -> list[str]:
    """The ids of an owner's queued and running jobs, oldest first."""
    stmt = (
        select(jobs.c.id)
        .where(jobs.c.owner_id == owner_id, jobs.c.status.in_(UNFINISHED))
        .order_by(jobs.c.seq)
    )
    async with db.read() as conn:
        return [str(job_id) for job_id in (await conn.execute(stmt)).scalars()]


async def count_unfinished(conn: AsyncConnection, owner_id: str) -> int:
    """How many queued or running jobs an owner has."""
    stmt = select(func.count()).where(jobs.c.owner_id == owner_id, jobs.c.status.in_(UNFINISHED))
    return int((await conn.execute(stmt)).scalar_one())


def too_many_jobs(limit: int) -> TooManyJobs:
    """The error for an owner at the limit of unfinished jobs."""
    return TooManyJobs(f"You already have {limit} unfinished jobs; wait for some to finish.")


async def check_unfinished_limit(db: Database, owner_id: str, limit: int) -> None:
    """Raise TooManyJobs if the owner is at the limit (checked before an upload starts)."""
    async with db.read() as conn:
        if await count_unfinished(conn, owner_id) >= limit:
            raise too_many_jobs(limit)


async def counts_by_status(db: Database) -> dict[JobStatus, int]:
    """How many jobs are in each state, across all owners (every state present)."""
    async with db.read() as conn:
        rows = (
            await conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status))
        ).all()
    found = {str(status): int(count) for status, count in rows}
    return {status: found.get(status.value, 0) for status in JobStatus}


async def oldest_queued_at(db: Database) -> datetime | None:
    """When the oldest job still waiting in the queue was submitted; None if none waits."""
    oldest = select(func.min(jobs.c.created_at)).where(jobs.c.status == JobStatus.QUEUED.value)
    async with db.read() as conn:
        found: datetime | None = (await conn.execute(oldest)).scalar()
    return found

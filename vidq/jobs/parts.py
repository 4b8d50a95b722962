"""The parts of chunked jobs (API.md "Scheduling"), one function per state change.

A chunked job's worker (its coordinator) writes the job's parts (`plan`); any worker then
claims one (`claim_part`: a queued part of a running job, or a running part whose lease
ran out, parts of the oldest job first), renews its lease while it encodes
(`renew_part`, which fails once the job is cancelled, deleted or ended), and ends it
(`finish_part`). Every write of a part's worker matches the part's lease token, and a
part's lease renews only while its job is unfinished: a cancel stops every part.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update

from vidq.clock import utcnow
from vidq.db.database import Database
from vidq.db.models import Job, JobPart, table_of
from vidq.jobs.states import UNFINISHED, JobStatus

jobs = table_of(Job)
parts = table_of(JobPart)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


@dataclass(frozen=True)
class PartPlan:
    """One part as its coordinator plans it."""

    idx: int
    start_frame: int
    end_frame: int | None
    start_seconds: float
    seconds: float
    output_key: str


@dataclass(frozen=True)
class PartClaim:
    """A part leased to a worker: its row as claimed and the lease's token."""

    part: JobPart
    lease_token: str


def _row(row: Any) -> JobPart:
    return JobPart(**dict(row))


async def plan(db: Database, job_id: str, planned: list[PartPlan], recipe: dict[str, Any]) -> None:
    """Write a job's parts. Parts written by an earlier attempt of the job with the same
    plan are kept (done ones need not run again); any other plan replaces them."""
    async with db.write() as conn:
        rows = (
            (await conn.execute(select(*parts.columns).where(parts.c.job_id == job_id)))
            .mappings()
            .all()
        )
        kept = [
            (r["idx"], r["start_frame"], r["end_frame"], r["output_key"], r["recipe"])
            for r in sorted(rows, key=lambda r: r["idx"])
        ]
        wanted = [(p.idx, p.start_frame, p.end_frame, p.output_key, recipe) for p in planned]
        if rows and kept == wanted:
            # A failed part of an earlier attempt is tried again in this one.
            await conn.execute(
                update(parts)
                .where(parts.c.job_id == job_id, parts.c.status == FAILED)
                .values(status=QUEUED, error_message=None, lease_token=None, progress=0.0)
            )
            return
        await conn.execute(delete(parts).where(parts.c.job_id == job_id))
        now = utcnow()
        for p in planned:
            await conn.execute(
                insert(parts).values(
                    id=str(uuid.uuid4()),
                    job_id=job_id,
                    idx=p.idx,
                    start_frame=p.start_frame,
                    end_frame=p.end_frame,
                    start_seconds=p.start_seconds,
                    seconds=p.seconds,
                    recipe=recipe,
                    status=QUEUED,
                    attempts=0,
                    progress=0.0,
                    output_key=p.output_key,
                    updated_at=now,
                )
            )


async def claim_part(
    db: Database,
    *,
    worker_id: str,
    lease_seconds: float,
    max_attempts: int,
    job_id: str | None = None,
) -> PartClaim | None:
    """Lease the next part to encode (of `job_id` only, if given), counting an attempt.

    Parts of running jobs only, the oldest job first (they finish work already started);
    a running part whose lease ran out (its worker died) is taken again, until it has used
    its attempts (then its coordinator fails the job)."""
    now = utcnow()
    token = str(uuid.uuid4())
    claimable = and_(
        or_(
            parts.c.status == QUEUED,
            and_(parts.c.status == RUNNING, parts.c.lease_expires_at < now),
        ),
        parts.c.attempts < max_attempts,
    )
    pick = (
        select(parts.c.id)
        .join(jobs, jobs.c.id == parts.c.job_id)
        .where(claimable, jobs.c.status == JobStatus.RUNNING.value)
        .order_by(jobs.c.seq, parts.c.idx)
        .limit(1)
    )
    if job_id is not None:
        pick = pick.where(parts.c.job_id == job_id)
    # A read first: an idle worker asks every poll, and most of the time there is no part
    # (no write transaction, which on SQLite would take the database's one writer).
    async with db.read() as conn:
        if (await conn.execute(pick)).first() is None:
            return None
    async with db.write() as conn:
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(of=parts, skip_locked=True)
        row = (
            (
                await conn.execute(
                    update(parts)
                    .where(parts.c.id == pick.scalar_subquery(), claimable)
                    .values(
                        status=RUNNING,
                        lease_token=token,
                        lease_expires_at=now + timedelta(seconds=lease_seconds),
                        worker_id=worker_id,
                        attempts=parts.c.attempts + 1,
                        progress=0.0,
                        updated_at=now,
                    )
                    .returning(*parts.columns)
                )
            )
            .mappings()
            .first()
        )
    return PartClaim(_row(row), token) if row else None


def _leased(claim: PartClaim) -> Any:
    unfinished = select(jobs.c.id).where(
        jobs.c.id == claim.part.job_id, jobs.c.status.in_(UNFINISHED)
    )
    return and_(
        parts.c.id == claim.part.id,
        parts.c.lease_token == claim.lease_token,
        parts.c.status == RUNNING,
        parts.c.job_id.in_(unfinished),
    )


async def renew_part(
    db: Database, claim: PartClaim, *, progress: float | None, lease_seconds: float
) -> bool:
    """Renew a part's lease and record how far it is (0…1). False: no longer ours, or its
    job was cancelled, deleted or ended."""
    now = utcnow()
    values: dict[str, Any] = {
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "updated_at": now,
    }
    if progress is not None:
        values["progress"] = progress
    async with db.write() as conn:
        result = await conn.execute(update(parts).where(_leased(claim)).values(**values))
    return result.rowcount == 1


async def finish_part(
    db: Database, claim: PartClaim, *, status: str, error_message: str | None = None
) -> bool:
    """End a leased part: done (its file stored), failed (with why), or queued again (its
    worker is shutting down; the attempt is not counted). False: no longer ours."""
    values: dict[str, Any] = {
        "status": status,
        "lease_token": None,
        "lease_expires_at": None,
        "updated_at": utcnow(),
        "error_message": error_message,
        "progress": 1.0 if status == DONE else 0.0,
    }
    if status == QUEUED:
        values["attempts"] = parts.c.attempts - 1
    async with db.write() as conn:
        result = await conn.execute(update(parts).where(_leased(claim)).values(**values))
    return result.rowcount == 1


async def parts_of(db: Database, job_id: str) -> list[JobPart]:
    """A job's parts in order."""
    async with db.read() as conn:
        rows = (
            (
                await conn.execute(
                    select(*parts.columns).where(parts.c.job_id == job_id).order_by(parts.c.idx)
                )
            )
            .mappings()
            .all()
        )
    return [_row(r) for r in rows]


async def job_unfinished(db: Database, job_id: str) -> bool:
    """Whether the job is still queued or running."""
    async with db.read() as conn:
        status = (await conn.execute(select(jobs.c.status).where(jobs.c.id == job_id))).scalar()
    return status is not None and status in UNFINISHED


async def drop(db: Database, job_id: str) -> None:
    """Forget a job's parts (the job ended; their files go with its input)."""
    async with db.write() as conn:
        await conn.execute(delete(parts).where(parts.c.job_id == job_id))

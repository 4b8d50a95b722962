"""The queue's operations, one function each. Every state change is a conditional UPDATE.

The job row is the queue: `submit` inserts it, `claim_next` leases the oldest queued
row to a worker, `heartbeat` renews the lease while recording progress, and `complete`,
`fail`, `requeue` and `request_cancel` end or return it. A job that ends writes its
notifications (`notify.outbox`) in the same transaction. Reads live in `reads`. A worker's writes match the
job id *and* its lease token, so a worker that lost its lease cannot touch the job's
next life; a cancel racing a finish cannot both win.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vidq.clock import utcnow
from vidq.db.claim import claim_parameters
from vidq.db.database import Database
from vidq.db.fair_claim import FIFO, Scheduling, claim_queued
from vidq.db.models import Job, table_of
from vidq.errors import Conflict, NotFound
from vidq.jobs.reads import count_unfinished, too_many_jobs
from vidq.jobs.states import UNFINISHED, JobStatus
from vidq.jobs.views import NotificationPayloads
from vidq.notify import outbox

jobs = table_of(Job)


@dataclass(frozen=True)
class NewJob:
    """Everything known about a job when it is queued: for an upload, its input stored and
    probed; for an import, the `source_url` (the input fields are filled in by `record_input`)."""

    id: str
    owner_id: str
    input_filename: str
    input_content_type: str | None
    input_size_bytes: int | None
    input_sha256: str | None
    input_info: dict[str, Any] | None
    options: dict[str, Any]
    metadata: dict[str, Any]
    webhook_url: str | None
    email: str | None
    source_url: str | None = None


@dataclass(frozen=True)
class Claim:
    """A job leased to one worker; its token fences every write the worker makes."""

    job: Job
    lease_token: str


async def submit(
    db: Database,
    new: NewJob,
    *,
    max_unfinished: int,
    on_insert: Callable[[AsyncConnection], Awaitable[None]] | None = None,
) -> Job:
    """Queue a job at the back of the line (`on_insert` runs in the same transaction)."""
    now = utcnow()
    async with db.write() as conn:
        if conn.dialect.name == "postgresql":
            # Serialise submissions of one owner so the limit check below cannot be raced.
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:owner))"), {"owner": new.owner_id}
            )
        if await count_unfinished(conn, new.owner_id) >= max_unfinished:
            raise too_many_jobs(max_unfinished)
        values = {
            "id": new.id,
            "owner_id": new.owner_id,
            "status": JobStatus.QUEUED.value,
            "created_at": now,
            "updated_at": now,
            "input_filename": new.input_filename,
            "input_content_type": new.input_content_type,
            "input_size_bytes": new.input_size_bytes,
            "input_sha256": new.input_sha256,
            "input_info": new.input_info,
            "options": new.options,
            "metadata": new.metadata,
            "webhook_url": new.webhook_url,
            "email": new.email,
            "source_url": new.source_url,
            "priority": new.options.get("priority", 0),
            "attempts": 0,
            "expired": False,
        }
        row = (
            (await conn.execute(insert(jobs).values(**values).returning(*jobs.columns)))
            .mappings()
            .one()
        )
        if on_insert is not None:
            await on_insert(conn)
    return Job.from_row(row)


async def claim_next(
    db: Database, *, worker_id: str, lease_seconds: float, scheduling: Scheduling = FIFO
) -> Claim | None:
    """Lease the next queued job (by `scheduling`) to this worker, counting an attempt. The
    plain claim is one statement, one round trip on PostgreSQL (`Database.one_statement`);
    fair share and the per-owner cap take a lock first, so they need a transaction."""
    now = utcnow()
    token = str(uuid.uuid4())
    connect = db.one_statement if scheduling.plain else db.write
    async with connect() as conn:
        params = claim_parameters(
            now=now,
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            worker_id=worker_id,
        )
        job = await claim_queued(conn, scheduling, params)
    return Claim(job, token) if job else None


def _leased(claim: Claim) -> Any:
    return and_(
        jobs.c.id == claim.job.id,
        jobs.c.lease_token == claim.lease_token,
        jobs.c.status == JobStatus.RUNNING.value,
    )


async def heartbeat(
    db: Database,
    claim: Claim,
    *,
    progress_percent: float | None,
    lease_seconds: float,
    eta_seconds: float | None = None,
) -> bool:
    """Record progress (and the seconds left, as estimated) and renew the lease. False: the
    job is no longer this worker's."""
    now = utcnow()
    values: dict[str, Any] = {
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "updated_at": now,
        "eta_seconds": eta_seconds,
    }
    if progress_percent is not None:
        values["progress_percent"] = progress_percent
    async with db.write() as conn:
        result = await conn.execute(update(jobs).where(_leased(claim)).values(**values))
    return result.rowcount == 1


async def record_input(
    db: Database,
    claim: Claim,
    *,
    content_type: str,
    size_bytes: int,
    sha256: str,
    info: dict[str, Any],
    options: dict[str, Any] | None = None,
) -> bool:
    """Record an imported input, fetched and probed, on its leased job (and the options it
    runs with, if they changed with it: a remux). False: the job is no longer this worker's."""
    values = {
        "input_content_type": content_type,
        "input_size_bytes": size_bytes,
        "input_sha256": sha256,
        "input_info": info,
        "updated_at": utcnow(),
        **({} if options is None else {"options": options}),
    }
    async with db.write() as conn:
        result = await conn.execute(update(jobs).where(_leased(claim)).values(**values))
    return result.rowcount == 1


async def _end_job(
    conn: AsyncConnection,
    condition: Any,
    values: dict[str, Any],
    status: JobStatus,
    payloads: NotificationPayloads,
    now: datetime,
) -> Job | None:
    """End a job (conditionally) and write its notifications in the same transaction."""
    stmt = (
        update(jobs)
        .where(condition)
        .values(
            status=status.value,
            finished_at=now,
            updated_at=now,
            lease_token=None,
            lease_expires_at=None,
            eta_seconds=None,
            **values,
        )
        .returning(*jobs.columns)
    )
    row = (await conn.execute(stmt)).mappings().first()
    if row is None:
        return None
    job = Job.from_row(row)
    if job.webhook_url or job.email:
        await outbox.enqueue(
            conn,
            job_id=job.id,
            owner_id=job.owner_id,
            targets=[("webhook", job.webhook_url), ("email", job.email)],
            event=payloads.event(job),
            now=now,
        )
    return job


async def complete(
    db: Database,
    claim: Claim,
    *,
    output_key: str,
    result: dict[str, Any],
    retention_seconds: float,
    payloads: NotificationPayloads,
) -> Job | None:
    """Mark a leased job completed with its output. None: the lease was lost."""
    now = utcnow()
    values = {
        "output_key": output_key,
        "result": result,
        "progress_percent": 100.0,
        "expires_at": now + timedelta(seconds=retention_seconds),
    }
    async with db.write() as conn:
        return await _end_job(conn, _leased(claim), values, JobStatus.COMPLETED, payloads, now)


async def fail(
    db: Database, claim: Claim, *, code: str, message: str, payloads: NotificationPayloads
) -> Job | None:
    """Mark a leased job failed. None: the lease was lost."""
    now = utcnow()
    values = {"error_code": code, "error_message": message}
    async with db.write() as conn:
        return await _end_job(conn, _leased(claim), values, JobStatus.FAILED, payloads, now)


async def ended_by(db: Database, claim: Claim, status: JobStatus) -> Job | None:
    """The job, if it ended with `status` under this claim: the same worker, the same attempt.

    An end written while the connection dropped may have been committed though its answer
    was lost; tried again, it matches nothing (the lease is gone). This tells such a
    write, already made, from a lease lost to a cancel or to another worker.
    """
    async with db.read() as conn:
        row = (
            (
                await conn.execute(
                    select(*jobs.columns).where(
                        jobs.c.id == claim.job.id,
                        jobs.c.status == status.value,
                        jobs.c.worker_id == claim.job.worker_id,
                        jobs.c.attempts == claim.job.attempts,
                    )
                )
            )
            .mappings()
            .first()
        )
    return Job.from_row(row) if row else None


async def cancelled_or_gone(db: Database, job_id: str) -> bool:
    """Whether a job was cancelled or deleted (rather than, say, leased to another worker)."""
    async with db.read() as conn:
        status = (await conn.execute(select(jobs.c.status).where(jobs.c.id == job_id))).scalar()
    return status is None or status == JobStatus.CANCELLED.value


async def requeue(db: Database, claim: Claim, *, count_attempt: bool) -> bool:
    """Put a leased job back in its place in the queue (shutdown, lost worker)."""
    values: dict[str, Any] = {
        "status": JobStatus.QUEUED.value,
        "lease_token": None,
        "lease_expires_at": None,
        "worker_id": None,
        "progress_percent": 0.0,
        "eta_seconds": None,
        "updated_at": utcnow(),
    }
    if not count_attempt:
        values["attempts"] = jobs.c.attempts - 1
    async with db.write() as conn:
        result = await conn.execute(update(jobs).where(_leased(claim)).values(**values))
    return result.rowcount == 1


async def request_cancel(
    db: Database, job_id: str, owner_id: str, *, payloads: NotificationPayloads
) -> Job:
    """Cancel a queued or running job, keeping its record. A worker sees it and stops."""
    now = utcnow()
    condition = and_(
        jobs.c.id == job_id, jobs.c.owner_id == owner_id, jobs.c.status.in_(UNFINISHED)
    )
    async with db.write() as conn:
        job = await _end_job(
            conn,
            condition,
            {"error_code": None},
            JobStatus.CANCELLED,
            payloads,
            now,
        )
        if job is not None:
            return job
        exists = (
            await conn.execute(
                select(jobs.c.status).where(jobs.c.id == job_id, jobs.c.owner_id == owner_id)
            )
        ).first()
    if exists is None:
        raise NotFound(f"No job {job_id}.")
    raise Conflict(f"Job {job_id} has already finished ({exists[0]}).")


async def remove(db: Database, job_id: str, owner_id: str) -> Job:
    """Delete a job's record, whatever its state; returns it so its files can be removed."""
    async with db.write() as conn:
        row = (
            (
                await conn.execute(
                    delete(jobs)
                    .where(jobs.c.id == job_id, jobs.c.owner_id == owner_id)
                    .returning(*jobs.columns)
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        raise NotFound(f"No job {job_id}.")
    return Job.from_row(row)


async def recover_expired_leases(
    db: Database,
    *,
    max_attempts: int,
    payloads: NotificationPayloads,
    worker_prefix: str | None = None,
) -> list[str]:
    """Return running jobs whose lease ran out (or whose worker is known dead) to the queue.

    A job that has used up its attempts fails with `worker_lost` instead. With
    `worker_prefix`, every running job of those workers is recovered at once.
    """
    now = utcnow()
    stale = jobs.c.lease_expires_at < now
    if worker_prefix is not None:
        stale = or_(stale, jobs.c.worker_id.startswith(worker_prefix, autoescape=True))
    recovered: list[str] = []
    async with db.write() as conn:
        rows = (
            await conn.execute(
                select(jobs.c.id, jobs.c.lease_token, jobs.c.attempts).where(
                    jobs.c.status == JobStatus.RUNNING.value, stale
                )
            )
        ).all()
        for job_id, token, attempts in rows:
            leased = and_(
                jobs.c.id == job_id,
                jobs.c.lease_token == token,
                jobs.c.status == JobStatus.RUNNING.value,
            )
            if attempts >= max_attempts:
                await _end_job(
                    conn,
                    leased,
                    {
                        "error_code": "worker_lost",
                        "error_message": f"The conversion was interrupted {attempts} times.",
                    },
                    JobStatus.FAILED,
                    payloads,
                    now,
                )
            else:
                await conn.execute(
                    update(jobs)
                    .where(leased)
                    .values(
                        status=JobStatus.QUEUED.value,
                        lease_token=None,
                        lease_expires_at=None,
                        worker_id=None,
                        progress_percent=0.0,
                        eta_seconds=None,
                        updated_at=now,
                    )
                )
            recovered.append(job_id)
    return recovered

"""Retention: which outputs have expired and which stored blobs a job or upload still needs."""

from __future__ import annotations

from sqlalchemy import and_, select, update

from vidq.clock import utcnow
from vidq.db import server_settings
from vidq.db.database import Database
from vidq.db.models import Job, Upload, table_of
from vidq.jobs.blobs import BlobOwner
from vidq.jobs.states import UNFINISHED, JobStatus

jobs = table_of(Job)
uploads = table_of(Upload)


async def expire_outputs(db: Database) -> list[tuple[str, str | None]]:
    """Mark completed jobs past `expires_at` as expired; return (job id, main output key) of each."""
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
                .returning(jobs.c.id, jobs.c.output_key)
            )
        ).all()
    return [(job_id, key) for job_id, key in rows]


async def owned_blobs(db: Database) -> tuple[str | None, set[BlobOwner]]:
    """The database's `database_id`, and every (job, kind) whose blobs it still needs:
    inputs of unfinished jobs, unexpired outputs, and each resumable upload's staged bytes
    and blob (the input of the job it becomes), until the upload is swept."""
    async with db.read() as conn:
        database_id = await server_settings.value(conn, server_settings.DATABASE_ID)
        inputs = (await conn.execute(select(jobs.c.id).where(jobs.c.status.in_(UNFINISHED)))).all()
        outputs = (
            await conn.execute(
                select(jobs.c.id).where(
                    jobs.c.status == JobStatus.COMPLETED.value, jobs.c.expired.is_(False)
                )
            )
        ).all()
        resumable = (await conn.execute(select(uploads.c.id, uploads.c.job_id))).all()
    return database_id, (
        {BlobOwner(job_id, "input") for (job_id,) in inputs}
        | {BlobOwner(job_id, "output") for (job_id,) in outputs}
        | {BlobOwner(upload_id, "upload") for upload_id, _ in resumable}
        | {BlobOwner(job_id, "input") for _, job_id in resumable}
    )

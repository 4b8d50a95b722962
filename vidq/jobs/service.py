"""What a client can do with jobs it already has: follow, list, cancel, delete, download,
fetch one file of an output.

Each function takes the process's `Runtime` and the owner asking, and returns what the
route renders: Job documents (API.md "The Job") or a stored output. Routes keep HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vidq import metrics
from vidq.clock import utcnow
from vidq.db.models import Job
from vidq.errors import Gone, NotFound, Unauthorized
from vidq.jobs import blobs, output_files, queue, reads
from vidq.jobs.runtime import Runtime
from vidq.jobs.signing import files_token_valid, parse_files_token, signed_expiry
from vidq.jobs.states import FINISHED, JobStatus
from vidq.jobs.submission import Submitted
from vidq.jobs.subscriptions import JobChange, Subscription

# A waiting request re-reads its job this often even if no event woke it (a fleet on SQLite).
WAIT_RECHECK_SECONDS = 1.0


async def document(
    runtime: Runtime, job_id: str, owner_id: str, *, base_url: str
) -> dict[str, Any]:
    """The Job document of one of the owner's jobs."""
    job = await reads.get(runtime.db, job_id, owner_id)
    return await runtime.render(job, base_url=base_url)


async def submitted_document(
    runtime: Runtime, submitted: Submitted, *, base_url: str, wait_seconds: float | None = None
) -> dict[str, Any]:
    """The Job document of a job just submitted (or replayed); with `wait_seconds`, once it
    has finished or after that long, whichever is first."""
    job = submitted.job
    if wait_seconds is not None and job.status not in FINISHED:
        return await wait_for_end(
            runtime, job.id, job.owner_id, seconds=wait_seconds, base_url=base_url
        )
    return await runtime.render(job, base_url=base_url)


async def wait_for_end(
    runtime: Runtime, job_id: str, owner_id: str, *, seconds: float, base_url: str
) -> dict[str, Any]:
    """The Job document once the job has finished, or after `seconds`, whichever is first."""
    job = await reads.get(runtime.db, job_id, owner_id)
    deadline = time.monotonic() + seconds
    while job.status not in FINISHED and (left := deadline - time.monotonic()) > 0:
        # Woken at once by this process's workers or (PostgreSQL) by LISTEN; the
        # periodic re-read covers a fleet on SQLite.
        await runtime.job_events.wait(job_id, min(left, WAIT_RECHECK_SECONDS))
        job = await reads.get(runtime.db, job_id, owner_id)
    return await runtime.render(job, base_url=base_url)


async def follow_job(
    runtime: Runtime, job_id: str, owner_id: str, *, base_url: str
) -> Subscription:
    """Live updates of one of the owner's jobs: the Job now, then at each change, until it ends."""
    reads.require_job_id(job_id)
    return await runtime.feeds.follow_job(job_id, owner_id, base_url=base_url)


async def follow_jobs(runtime: Runtime, owner_id: str, *, base_url: str) -> Subscription:
    """Live updates of all the owner's jobs: the unfinished ones now, then every change."""
    return await runtime.feeds.follow_owner(owner_id, base_url=base_url)


async def list_documents(
    runtime: Runtime,
    owner_id: str,
    *,
    statuses: Sequence[str],
    limit: int,
    before_seq: int | None,
    base_url: str,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the owner's Job documents, newest first, and the seq to continue before."""
    page, next_seq = await reads.list_jobs(
        runtime.db, owner_id, statuses=statuses, limit=limit, before_seq=before_seq
    )
    return await runtime.render_page(page, base_url=base_url), next_seq


async def cancel(runtime: Runtime, job_id: str, owner_id: str, *, base_url: str) -> dict[str, Any]:
    """Stop a queued or running job, keeping its record; its input goes."""
    job = await queue.request_cancel(runtime.db, job_id, owner_id, payloads=runtime.payloads)
    await runtime.announce_stop(job.id)
    await blobs.delete_input(runtime.storage, job.id)
    # It may have been queued: the places behind it moved up.
    await runtime.announce_finished(job.id, JobChange(job.id, job.owner_id, queue_moved=True))
    return await runtime.render(job, base_url=base_url)


async def delete(runtime: Runtime, job_id: str, owner_id: str) -> None:
    """Remove a job in any state, with every blob it owns."""
    job = await queue.remove(runtime.db, job_id, owner_id)
    if job.status not in FINISHED:
        await runtime.announce_stop(job.id)
    await runtime.announce_changed(
        JobChange(job.id, job.owner_id, queue_moved=job.status == JobStatus.QUEUED)
    )
    await blobs.delete_all(runtime.storage, job.id, job.output_key)


@dataclass(frozen=True)
class StoredOutput:
    """A completed job's main output, where it is stored and how it is served."""

    job_id: str
    key: str
    filename: str
    content_type: str
    expires_at: datetime | None


def _servable_output(job: Job) -> tuple[str, dict[str, Any]]:
    """The main output key and the result of a job whose output can be served; 404 unless
    it completed, 410 once it has expired."""
    if job.status != JobStatus.COMPLETED or not job.output_key or not job.result:
        raise NotFound(f"Job {job.id} has no output (it is {job.status}).")
    if job.expired or (job.expires_at is not None and job.expires_at <= utcnow()):
        raise Gone(f"The output of job {job.id} has expired.")
    return job.output_key, job.result


async def find_output(
    runtime: Runtime,
    job_id: str,
    owner_id: str | None,
    *,
    expires: str | None = None,
    signature: str | None = None,
) -> StoredOutput:
    """The output of a completed job, for its owner (`owner_id`) or a signed link (its
    `expires` and `signature` as sent: a malformed one is as invalid as a wrong one)."""
    expires_unix = None
    if owner_id is None and (expires is None or signature is None):
        raise Unauthorized()
    reads.require_job_id(job_id)
    if owner_id is None:
        expires_unix = signed_expiry(runtime.signing_key, job_id, expires, signature)
        if expires_unix is None:
            raise Unauthorized("The download link's signature is not valid.")
    job = await reads.get(runtime.db, job_id, owner_id)
    key, result = _servable_output(job)
    if (
        owner_id is None
        and job.expires_at is not None
        and expires_unix != int(job.expires_at.timestamp())
    ):
        raise Unauthorized("The download link's signature is not valid.")
    return StoredOutput(
        job_id=job.id,
        key=key,
        filename=result["filename"],
        content_type=result["content_type"],
        expires_at=job.expires_at,
    )


@dataclass(frozen=True)
class StoredFile:
    """One file of a completed job's output, where it is stored and how it is served."""

    job_id: str
    key: str
    path: str
    content_type: str
    # Whether a client may be sent to fetch it straight from the store (a bucket).
    redirectable: bool
    expires_at: datetime | None


def _stored_file(job: Job, path: str) -> StoredFile:
    """The file at `path` of a job's output: 404 unless the path is one the job lists."""
    main_key, _ = _servable_output(job)
    file = output_files.find_file(job, path) if blobs.is_job_path(path) else None
    if file is None:
        raise NotFound(f"Job {job.id} has no file {path!r}.")
    return StoredFile(
        job_id=job.id,
        key=blobs.file_key(job.id, file.path, role=file.role, main_key=main_key),
        path=file.path,
        content_type=output_files.served_content_type(file),
        redirectable=file.role in output_files.REDIRECTABLE_ROLES,
        expires_at=job.expires_at,
    )


async def find_file(runtime: Runtime, job_id: str, owner_id: str, path: str) -> StoredFile:
    """One file of the owner's completed job, by its path relative to the job."""
    reads.require_job_id(job_id)
    return _stored_file(await reads.get(runtime.db, job_id, owner_id), path)


async def find_signed_file(runtime: Runtime, token: str, path: str) -> StoredFile:
    """One file of a completed job under its signed prefix `/s/<token>/` (no key)."""
    parsed = parse_files_token(token)
    if parsed is None:
        raise NotFound("No such file: the link is not one this service made.")
    if not files_token_valid(runtime.signing_key, parsed):
        raise Unauthorized("The link's signature is not valid.")
    if parsed.expires_unix <= utcnow().timestamp():
        raise Gone(f"The output of job {parsed.job_id} has expired.")
    job = await reads.get(runtime.db, parsed.job_id)
    if job.expires_at is not None and parsed.expires_unix != int(job.expires_at.timestamp()):
        raise Unauthorized("The link's signature is not valid.")
    return _stored_file(job, path)


async def refresh_queue_metrics(runtime: Runtime) -> None:
    """Set the gauges of the whole queue from the database, for a scrape: jobs by status, the
    queue's depth and how long its oldest job has waited (what an autoscaler reads)."""
    counts = await reads.counts_by_status(runtime.db)
    oldest = await reads.oldest_queued_at(runtime.db)
    for status, count in counts.items():
        metrics.JOBS_BY_STATUS.labels(status=status.value).set(count)
    metrics.QUEUE_DEPTH.set(counts[JobStatus.QUEUED])
    waited = 0.0 if oldest is None else (utcnow() - oldest).total_seconds()
    metrics.QUEUE_OLDEST_AGE.set(max(0.0, waited))

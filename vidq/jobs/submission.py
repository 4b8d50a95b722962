"""Submitting a job: one function from "an input is arriving" to "a job is queued".

`submit` runs the steps every way of sending an input shares: the owner's limit of
unfinished jobs, the Idempotency-Key (reserve, replay or refuse, bind), storing the input
(the caller's `receive`, which streams it under the key it is given), checking the
fields, probing the input, checking the options against it, and queueing the job. A
request that fails at any step leaves neither a job nor a blob behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from vidq import metrics
from vidq.db.models import Job
from vidq.errors import IdempotencyMismatch, NotFound, VidqError
from vidq.jobs import blobs, idempotency, queue, reads
from vidq.jobs.capacity import check_capacity
from vidq.jobs.fields import CheckedFields, check_fields
from vidq.jobs.input_checks import check_against_input
from vidq.jobs.runtime import Runtime
from vidq.jobs.subscriptions import JobChange
from vidq.media.probe import probe


@dataclass(frozen=True)
class StoredInput:
    """An input stored under the key it was given, and the form fields that came with it.

    `filename` is the name kept (cleaned); `sent_filename` the one the client gave, if any,
    which is checked as text with the fields and is part of the payload an
    Idempotency-Key stands for.
    """

    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    fields: dict[str, str] = field(default_factory=dict)
    sent_filename: str | None = None


# Stores the arriving input under the given key; raises a VidqError (and keeps nothing) if it cannot.
Receiver = Callable[[str], Awaitable[StoredInput]]


@dataclass(frozen=True)
class Submitted:
    """The job a submission queued, or (`replayed`) the one an earlier identical request made."""

    job: Job
    replayed: bool = False


async def submit(
    runtime: Runtime,
    owner_id: str,
    receive: Receiver,
    *,
    idempotency_key: str | None = None,
    checked: CheckedFields | None = None,
) -> Submitted:
    """Store, check, probe and queue one input; `checked`: its fields, if checked already."""
    await reads.check_unfinished_limit(runtime.db, owner_id, runtime.settings.max_unfinished_jobs)
    prior = None
    if idempotency_key is not None:
        prior = await idempotency.reserve(runtime.db, owner_id, idempotency_key)
    try:
        return await _submit(runtime, owner_id, receive, idempotency_key, prior, checked)
    finally:
        if idempotency_key is not None and prior is None:
            # Undone only if no job was queued: then the client may retry with the key.
            await idempotency.cancel_reservation(runtime.db, owner_id, idempotency_key)


async def _submit(
    runtime: Runtime,
    owner_id: str,
    receive: Receiver,
    idempotency_key: str | None,
    prior: idempotency.PriorRequest | None,
    checked: CheckedFields | None,
) -> Submitted:
    settings = runtime.settings
    job_id = str(uuid.uuid4())
    key = blobs.input_key(job_id)
    try:
        stored = await receive(key)
    except VidqError as exc:
        metrics.UPLOADS.labels(outcome=exc.code).inc()
        raise
    digest = idempotency.request_hash(stored.fields, stored.sent_filename, stored.sha256)
    try:
        if prior is not None:
            replay = await _replay(runtime, owner_id, idempotency_key or "", prior, digest)
            if replay is not None:
                await blobs.delete_input(runtime.storage, job_id)
                return replay

        async def bind_key(conn: AsyncConnection) -> None:
            if idempotency_key is not None:
                await idempotency.bind(conn, owner_id, idempotency_key, job_id, digest)

        request = checked or await check_fields(
            stored.fields, settings, filename=stored.sent_filename
        )
        async with runtime.storage.local_copy(key, settings.tmp_dir) as path:
            info = await probe(path, settings)
        check_against_input(request.options, info, sent=stored.fields.keys())
        check_capacity(request.options, info, settings.ffmpeg_memory_bytes)
        job = await queue.submit(
            runtime.db,
            queue.NewJob(
                id=job_id,
                owner_id=owner_id,
                input_filename=stored.filename,
                input_content_type=stored.content_type,
                input_size_bytes=stored.size_bytes,
                input_sha256=stored.sha256,
                input_info=info.to_json(),
                options=request.options.model_dump(),
                metadata=request.metadata,
                webhook_url=request.webhook_url,
                email=request.email,
            ),
            max_unfinished=settings.max_unfinished_jobs,
            on_insert=bind_key,
        )
    except BaseException as exc:
        await blobs.delete_input(runtime.storage, job_id)
        metrics.UPLOADS.labels(outcome=getattr(exc, "code", "error")).inc()
        raise
    metrics.UPLOADS.labels(outcome="accepted").inc()
    metrics.UPLOAD_BYTES.inc(stored.size_bytes)
    await runtime.announce_queued(JobChange(job.id, owner_id))
    return Submitted(job)


async def _replay(
    runtime: Runtime,
    owner_id: str,
    idempotency_key: str,
    prior: idempotency.PriorRequest,
    digest: str,
) -> Submitted | None:
    """The first job again for a repeated request; None if that job is gone (start afresh)."""
    if prior.request_hash != digest:
        raise IdempotencyMismatch(
            "This Idempotency-Key was used with a different file or options in the last 24 hours."
        )
    try:
        job = await reads.get(runtime.db, prior.job_id, owner_id)
    except NotFound:
        await idempotency.forget(runtime.db, owner_id, idempotency_key)
        await idempotency.reserve(runtime.db, owner_id, idempotency_key)
        return None
    return Submitted(job, replayed=True)

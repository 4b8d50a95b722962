"""Submitting a job: one function from "an input is arriving" to "a job is queued".

Inputs arrive three ways (DESIGN.md) and end in the same place, an input blob plus a
probe, then the same queue:

- `submit` with a `receive` that streams an upload under the key it is given (multipart
  or raw), or that names a finished resumable upload (`NamedUpload`), whose blob already
  is the input of the job it becomes: it is taken (used once) and probed like any upload;
- `submit_url` for a `source_url`: the job is queued at once, without its input, and a
  worker fetches and probes it (vidq.worker.importer).

Both share the steps every submission has: the owner's limit of unfinished jobs, the
Idempotency-Key (reserve, replay or refuse, bind), checking the fields, and queueing the
job. A request that fails at any step leaves neither a job nor a blob behind (a
resumable upload it named is given back, usable again).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from vidq import metrics
from vidq.db.models import Job
from vidq.errors import IdempotencyMismatch, NotFound, VidqError
from vidq.faults import retry_transient
from vidq.jobs import blobs, idempotency, overlay_parts, queue, reads, resumable
from vidq.jobs.capacity import check_capacity
from vidq.jobs.fields import CheckedFields, check_fields, check_source_url
from vidq.jobs.filenames import clean_filename, filename_from_url, guess_content_type
from vidq.jobs.input_checks import check_against_input
from vidq.jobs.input_probe import probe_stored
from vidq.jobs.overlay_parts import ReceivedPart
from vidq.jobs.remux import decide_remux
from vidq.jobs.runtime import Runtime
from vidq.jobs.subscriptions import JobChange


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
    parts: dict[str, ReceivedPart] = field(default_factory=dict)  # overlay parts, by role


@dataclass(frozen=True)
class NamedUpload:
    """A request whose input is a finished resumable upload (`upload_id`), with its fields."""

    upload_id: str
    fields: dict[str, str] = field(default_factory=dict)
    parts: dict[str, ReceivedPart] = field(default_factory=dict)  # overlay parts, by role


# Stores the arriving input under the given key (or names a resumable upload); raises a
# VidqError (and keeps nothing) if it cannot.
Receiver = Callable[[str], Awaitable[StoredInput | NamedUpload]]


@dataclass(frozen=True)
class Submitted:
    """The job a submission queued, or (`replayed`) the one an earlier identical request made."""

    job: Job
    replayed: bool = False


# The body of a submission, given what an earlier request with the same key did.
_Body = Callable[[idempotency.PriorRequest | None], Awaitable[Submitted]]


async def _keyed(
    runtime: Runtime, owner_id: str, idempotency_key: str | None, body: _Body
) -> Submitted:
    """Run a submission within the owner's job limit and its Idempotency-Key's reservation."""
    await reads.check_unfinished_limit(runtime.db, owner_id, runtime.settings.max_unfinished_jobs)
    prior = None
    if idempotency_key is not None:
        prior = await idempotency.reserve(runtime.db, owner_id, idempotency_key)
    try:
        return await body(prior)
    finally:
        if idempotency_key is not None and prior is None:
            # Undone only if no job was queued: then the client may retry with the key. Made
            # again through a passing fault (the one that failed the request, often).
            key = idempotency_key
            await retry_transient(
                lambda: idempotency.cancel_reservation(runtime.db, owner_id, key),
                budget_seconds=runtime.settings.transient_retry_seconds,
                what="the database",
            )


def _binder(
    owner_id: str, idempotency_key: str | None, job_id: str, digest: str
) -> Callable[[AsyncConnection], Awaitable[None]]:
    async def bind_key(conn: AsyncConnection) -> None:
        if idempotency_key is not None:
            await idempotency.bind(conn, owner_id, idempotency_key, job_id, digest)

    return bind_key


async def submit(
    runtime: Runtime,
    owner_id: str,
    receive: Receiver,
    *,
    idempotency_key: str | None = None,
    checked: CheckedFields | None = None,
) -> Submitted:
    """Store (or take), check, probe and queue one input; `checked`: its fields, if checked
    already."""

    async def body(prior: idempotency.PriorRequest | None) -> Submitted:
        return await _submit(runtime, owner_id, receive, idempotency_key, prior, checked)

    return await _keyed(runtime, owner_id, idempotency_key, body)


async def _receive(
    runtime: Runtime, receive: Receiver, job_id: str
) -> tuple[StoredInput | NamedUpload, str]:
    """What arrived, and the fingerprint of the request an Idempotency-Key stands for."""
    try:
        received = await receive(blobs.input_key(job_id))
    except VidqError as exc:
        metrics.UPLOADS.labels(outcome=exc.code).inc()
        raise
    fields = overlay_parts.digest_fields(received.fields, received.parts)
    if isinstance(received, NamedUpload):
        fields["upload_id"] = received.upload_id
        return received, idempotency.request_hash(fields, None, "")
    digest = idempotency.request_hash(fields, received.sent_filename, received.sha256)
    return received, digest


async def _take(runtime: Runtime, owner_id: str, named: NamedUpload) -> tuple[str, StoredInput]:
    """The job id a finished resumable upload was made for, and its input as stored."""
    upload = await resumable.take(runtime.db, owner_id, named.upload_id)
    filename = clean_filename(upload.filename)
    return upload.job_id, StoredInput(
        filename=filename,
        content_type=guess_content_type(upload.content_type, filename),
        size_bytes=upload.length_bytes,
        sha256=upload.sha256 or "",
        fields=named.fields,
        parts=named.parts,
    )


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
    received, digest = await _receive(runtime, receive, job_id)
    named = received if isinstance(received, NamedUpload) else None
    try:
        if prior is not None:
            replay = await _replay(runtime, owner_id, idempotency_key or "", prior, digest)
            if replay is not None:
                if named is None:
                    await blobs.delete_input(runtime.storage, job_id)
                return replay
        if named is not None:
            job_id, stored = await _take(runtime, owner_id, named)
        else:
            assert isinstance(received, StoredInput)
            stored = received
    except BaseException as exc:
        if named is None:
            await blobs.delete_input(runtime.storage, job_id)
        metrics.UPLOADS.labels(outcome=getattr(exc, "code", "error")).inc()
        raise
    attached: overlay_parts.AttachedParts | None = None
    try:
        request = checked or await check_fields(
            stored.fields, settings, filename=stored.sent_filename, attached=stored.parts.keys()
        )
        info = await probe_stored(runtime.storage, blobs.input_key(job_id), settings)
        check_against_input(request.options, info, sent=stored.fields.keys())
        options = decide_remux(request.options, info, sent=stored.fields.keys()).options
        check_capacity(options, info, settings.ffmpeg_memory_bytes)
        attached = await overlay_parts.attach_parts(
            runtime, owner_id, job_id, options, info, stored.parts, stored.fields
        )
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
                options=options.model_dump(),
                metadata=request.metadata,
                webhook_url=request.webhook_url,
                email=request.email,
            ),
            max_unfinished=settings.max_unfinished_jobs,
            on_insert=_binder(owner_id, idempotency_key, job_id, digest),
        )
    except BaseException as exc:
        if attached is not None:
            await overlay_parts.undo(runtime, attached)
        if named is not None:
            await resumable.give_back(runtime.db, named.upload_id)
        else:
            await blobs.delete_input(runtime.storage, job_id)
        metrics.UPLOADS.labels(outcome=getattr(exc, "code", "error")).inc()
        raise
    await overlay_parts.settle(runtime, attached)
    metrics.UPLOADS.labels(outcome="accepted").inc()
    metrics.UPLOAD_BYTES.inc(stored.size_bytes)
    await runtime.announce_queued(
        JobChange(job.id, owner_id, queue_moved=await _moved(runtime, job))
    )
    return Submitted(job)


async def _moved(runtime: Runtime, job: Job) -> bool:
    """Whether the new job went ahead of others (a higher priority, or fair share)."""
    return await reads.queuing_moved_others(runtime.db, job, fair_share=runtime.settings.fair_share)


async def submit_url(
    runtime: Runtime,
    owner_id: str,
    source_url: str,
    fields: dict[str, str],
    *,
    idempotency_key: str | None = None,
    checked: CheckedFields | None = None,
) -> Submitted:
    """Queue a job whose input a worker will fetch from `source_url` (checked here, and
    again at every connection the worker makes); nothing is fetched now."""
    settings = runtime.settings
    digest = idempotency.request_hash({**fields, "source_url": source_url}, None, "")

    async def queue_job(job_id: str, request: CheckedFields) -> Job:
        return await queue.submit(
            runtime.db,
            queue.NewJob(
                id=job_id,
                owner_id=owner_id,
                input_filename=filename_from_url(source_url),
                input_content_type=None,
                input_size_bytes=None,
                input_sha256=None,
                input_info=None,
                options=request.options.model_dump(),
                metadata=request.metadata,
                webhook_url=request.webhook_url,
                email=request.email,
                source_url=source_url,
            ),
            max_unfinished=settings.max_unfinished_jobs,
            on_insert=_binder(owner_id, idempotency_key, job_id, digest),
        )

    async def body(prior: idempotency.PriorRequest | None) -> Submitted:
        if prior is not None:
            replay = await _replay(runtime, owner_id, idempotency_key or "", prior, digest)
            if replay is not None:
                return replay
        request = checked or await check_fields(fields, settings)
        await check_source_url(source_url, settings.address_policy)
        job_id = str(uuid.uuid4())
        # Overlays named by upload id are the job's from now on; its input comes later.
        attached = await overlay_parts.attach_parts(
            runtime, owner_id, job_id, request.options, None, {}, fields
        )
        try:
            job = await queue_job(job_id, request)
        except BaseException:
            await overlay_parts.undo(runtime, attached)
            raise
        await overlay_parts.settle(runtime, attached)
        await runtime.announce_queued(
            JobChange(job.id, owner_id, queue_moved=await _moved(runtime, job))
        )
        return Submitted(job)

    return await _keyed(runtime, owner_id, idempotency_key, body)


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

"""Routes of the job lifecycle: convert, follow, list, cancel, delete (downloads: routes_output)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from vidq import metrics
from vidq.api.auth import CurrentAccount, RuntimeDep
from vidq.api.http import etag_matches
from vidq.api.schemas import CONVERT_REQUEST_BODY, JobList, JobModel, problem_responses
from vidq.api.uploads import Upload, receive_multipart, receive_raw, upload_form
from vidq.db.models import Job
from vidq.errors import IdempotencyMismatch, InvalidOption, NotFound, VidqError
from vidq.jobs import idempotency, queue
from vidq.jobs.accounts import Account
from vidq.jobs.options import check_against_input
from vidq.jobs.states import FINISHED, JobStatus
from vidq.jobs.submission import Submission, parse_submission
from vidq.jobs.views import job_view
from vidq.media.probe import probe
from vidq.runtime import Runtime

log = logging.getLogger("vidq.api")
router = APIRouter()

WAIT_RECHECK_SECONDS = 1.0
RETRY_AFTER_QUEUED = 5
RETRY_AFTER_RUNNING = 2


async def render_job(runtime: Runtime, job: Job, request: Request) -> dict[str, Any]:
    """The Job document for an answer to `request`."""
    position = await queue.queue_position(runtime.db, job)
    notes = await queue.notifications_of(runtime.db, [job.id])
    return job_view(
        job,
        base_url=runtime.base_url_for(str(request.base_url)),
        secret=runtime.signing_key,
        queue_position=position,
        notifications=notes.get(job.id, []),
    )


def _retry_after(job: Job) -> dict[str, str]:
    if job.status == JobStatus.QUEUED:
        return {"Retry-After": str(RETRY_AFTER_QUEUED)}
    if job.status == JobStatus.RUNNING:
        return {"Retry-After": str(RETRY_AFTER_RUNNING)}
    return {}


def _etag(document: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    return f'"{digest[:32]}"'


async def _receive(
    request: Request, runtime: Runtime, key: str, form: str
) -> tuple[Upload, dict[str, str], Submission | None]:
    """Stream the upload into storage; return it, its fields, and those fields checked if
    they could be checked before the body was read (a raw upload's query)."""
    max_bytes = runtime.settings.max_upload_bytes
    if form == "raw":
        fields: dict[str, str] = {}
        for name, value in request.query_params.multi_items():
            if name in fields:
                raise InvalidOption.field(name, "is given more than once")
            fields[name] = value
        filename = fields.pop("filename", None)
        # Fail fast: options in the query can be checked before the body is read.
        submission = await parse_submission(fields, runtime.settings)
        upload = await receive_raw(
            request, runtime.storage, key, filename=filename, max_bytes=max_bytes
        )
        return upload, fields, submission
    upload = await receive_multipart(request, runtime.storage, key, max_bytes=max_bytes)
    return upload, upload.fields, None


@router.post(
    "/convert",
    status_code=202,
    response_model=JobModel,
    responses={
        200: {
            "model": JobModel,
            "description": "The job an earlier request with the same Idempotency-Key made",
        },
        **problem_responses(400, 401, 409, 413, 415, 422, 429, 507),
    },
    openapi_extra={"requestBody": CONVERT_REQUEST_BODY},
    summary="Queue a conversion",
)
async def convert(
    request: Request,
    account: CurrentAccount,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Upload a video with its options; the job is queued and its id returned at once (202)."""
    form = upload_form(request.headers.get("content-type", ""))
    settings = runtime.settings
    await queue.check_unfinished_limit(runtime.db, account.id, settings.max_unfinished_jobs)
    prior = None
    if idempotency_key is not None:
        prior = await idempotency.reserve(runtime.db, account.id, idempotency_key)
    try:
        return await _convert(request, form, account, runtime, idempotency_key, prior)
    finally:
        if idempotency_key is not None and prior is None:
            # Unbound only if the job was never queued: then the client may retry the key.
            await idempotency.release(runtime.db, account.id, idempotency_key)


async def _convert(
    request: Request,
    form: str,
    account: Account,
    runtime: Runtime,
    idempotency_key: str | None,
    prior: idempotency.PriorRequest | None,
) -> Response:
    settings = runtime.settings
    job_id = str(uuid.uuid4())
    key = f"inputs/{job_id}"
    try:
        upload, fields, checked = await _receive(request, runtime, key, form)
    except VidqError as exc:
        metrics.UPLOADS.labels(outcome=exc.code).inc()
        raise
    digest = idempotency.request_hash(fields, upload.sha256)
    if prior is not None:
        try:
            replay = await _replay(runtime, request, account, idempotency_key or "", prior, digest)
        except BaseException:
            await runtime.storage.delete(key)
            raise
        if replay is not None:
            await runtime.storage.delete(key)
            return replay

    async def bind_key(conn: AsyncConnection) -> None:
        if idempotency_key is not None:
            await idempotency.bind(conn, account.id, idempotency_key, job_id, digest)

    try:
        submission = checked or await parse_submission(fields, settings)
        async with runtime.storage.local_copy(key, settings.tmp_dir) as path:
            info = await probe(path, settings)
        check_against_input(submission.options, info)
        job = await queue.submit(
            runtime.db,
            queue.NewJob(
                id=job_id,
                owner_id=account.id,
                input_key=key,
                input_filename=upload.filename,
                input_content_type=upload.content_type,
                input_size_bytes=upload.size_bytes,
                input_sha256=upload.sha256,
                input_info=info.to_json(),
                options=submission.options.model_dump(),
                metadata=submission.metadata,
                webhook_url=submission.webhook_url,
                email=submission.email,
            ),
            max_unfinished=settings.max_unfinished_jobs,
            on_insert=bind_key,
        )
    except BaseException as exc:
        await runtime.storage.delete(key)
        metrics.UPLOADS.labels(outcome=getattr(exc, "code", "error")).inc()
        raise
    metrics.UPLOADS.labels(outcome="accepted").inc()
    metrics.UPLOAD_BYTES.inc(upload.size_bytes)
    await runtime.announce_queued()
    document = await render_job(runtime, job, request)
    return JSONResponse(
        document,
        status_code=202,
        headers={"Location": f"/job/{job.id}", **_retry_after(job)},
    )


async def _replay(
    runtime: Runtime,
    request: Request,
    account: Account,
    idempotency_key: str,
    prior: idempotency.PriorRequest,
    digest: str,
) -> Response | None:
    """The first job again for a repeated request; None if that job is gone (start afresh)."""
    if prior.request_hash != digest:
        raise IdempotencyMismatch(
            "This Idempotency-Key was used with a different file or options in the last 24 hours."
        )
    try:
        job = await queue.get(runtime.db, prior.job_id, account.id)
    except NotFound:
        await idempotency.forget(runtime.db, account.id, idempotency_key)
        await idempotency.reserve(runtime.db, account.id, idempotency_key)
        return None
    document = await render_job(runtime, job, request)
    return JSONResponse(
        document, status_code=200, headers={"Location": f"/job/{job.id}", **_retry_after(job)}
    )


@router.get(
    "/job/{job_id}",
    response_model=JobModel,
    responses={304: {"description": "Not modified"}, **problem_responses(401, 404, 422)},
    summary="Follow a job",
)
async def get_job(
    job_id: str,
    request: Request,
    account: CurrentAccount,
    runtime: RuntimeDep,
    wait: Annotated[
        float | None,
        Query(
            gt=0,
            le=60,
            description="Hold the answer until the job finishes or this many seconds pass.",
        ),
    ] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The job's current state. With `?wait=N`, held until it finishes or N seconds pass."""
    job = await queue.get(runtime.db, job_id, account.id)
    if wait is not None:
        deadline = time.monotonic() + wait
        while job.status not in FINISHED and (left := deadline - time.monotonic()) > 0:
            # Woken at once by this process's workers or (PostgreSQL) by LISTEN; the
            # periodic re-read covers a fleet on SQLite.
            await runtime.job_events.wait(job_id, min(left, WAIT_RECHECK_SECONDS))
            job = await queue.get(runtime.db, job_id, account.id)
    document = await render_job(runtime, job, request)
    etag = _etag(document)
    headers = {"ETag": etag, **_retry_after(job)}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(document, headers=headers)


@router.delete(
    "/job/{job_id}",
    status_code=204,
    responses=problem_responses(401, 404),
    summary="Delete a job",
)
async def delete_job(job_id: str, account: CurrentAccount, runtime: RuntimeDep) -> Response:
    """Remove a job: a queued one leaves the queue, a running one is stopped, files go too."""
    job = await queue.remove(runtime.db, job_id, account.id)
    await remove_job_files(runtime, job)
    return Response(status_code=204)


async def remove_job_files(runtime: Runtime, job: Job) -> None:
    """Delete a job's input and output blobs, if any."""
    await runtime.storage.delete(f"inputs/{job.id}")
    if job.output_key:
        await runtime.storage.delete(job.output_key)


@router.post(
    "/job/{job_id}/cancel",
    response_model=JobModel,
    responses=problem_responses(401, 404, 409),
    summary="Cancel a job",
)
async def cancel_job(
    job_id: str, request: Request, account: CurrentAccount, runtime: RuntimeDep
) -> Response:
    """Stop a queued or running job, keeping its record (status `cancelled`)."""
    job = await queue.request_cancel(
        runtime.db, job_id, account.id, payload_for=runtime.notification_payload
    )
    await runtime.storage.delete(f"inputs/{job.id}")
    await runtime.announce_finished(job.id)
    return JSONResponse(await render_job(runtime, job, request))


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        value = int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidOption.field("cursor", "is not a cursor this server gave out") from exc
    if value < 1:
        raise InvalidOption.field("cursor", "is not a cursor this server gave out")
    return value


def _encode_cursor(seq: int | None) -> str | None:
    return None if seq is None else base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


@router.get(
    "/jobs",
    response_model=JobList,
    responses=problem_responses(401, 422),
    summary="List your jobs",
)
async def list_jobs(
    request: Request,
    account: CurrentAccount,
    runtime: RuntimeDep,
    status: Annotated[
        list[JobStatus] | None, Query(description="Only jobs in these states (repeatable).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Your jobs, newest first, a page at a time."""
    page, next_seq = await queue.list_jobs(
        runtime.db,
        account.id,
        statuses=[s.value for s in status or []],
        limit=limit,
        before_seq=_decode_cursor(cursor),
    )
    notes = await queue.notifications_of(runtime.db, [j.id for j in page])
    base_url = runtime.base_url_for(str(request.base_url))
    documents = [
        job_view(
            job,
            base_url=base_url,
            secret=runtime.signing_key,
            queue_position=await queue.queue_position(runtime.db, job),
            notifications=notes.get(job.id, []),
        )
        for job in page
    ]
    return {"jobs": documents, "next_cursor": _encode_cursor(next_seq)}

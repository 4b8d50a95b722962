"""Routes of the job lifecycle: convert, follow, list, cancel, delete, download."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidq import metrics
from vidq.api.auth import CurrentAccount, OptionalAccount, RuntimeDep
from vidq.api.schemas import CONVERT_REQUEST_BODY, JobList, JobModel, problem_responses
from vidq.api.uploads import Upload, receive_multipart, receive_raw, upload_form
from vidq.db.models import Job
from vidq.errors import Gone, IdempotencyMismatch, InvalidOption, NotFound, Unauthorized, VidqError
from vidq.jobs import idempotency, queue
from vidq.jobs.accounts import Account
from vidq.jobs.options import check_against_input
from vidq.jobs.signing import signature_valid
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
    if if_none_match and etag in [tag.strip() for tag in if_none_match.split(",")]:
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


def _authorize_download(
    job_id: str, account: Account | None, expires: int | None, signature: str | None, secret: str
) -> str | None:
    """The owner id to look the job up under (None: any owner, via a valid signature)."""
    if account is not None:
        return account.id
    if expires is None or signature is None:
        raise Unauthorized()
    if not signature_valid(secret, job_id, expires, signature):
        raise Unauthorized("The download link's signature is not valid.")
    return None


async def download_output(
    job_id: str,
    request: Request,
    account: OptionalAccount,
    runtime: RuntimeDep,
    expires: Annotated[int | None, Query(ge=0, le=2**40)] = None,
    signature: Annotated[str | None, Query(max_length=100)] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The output file, for the owner's key or the signed `download_url`; Range and HEAD work."""
    owner_id = _authorize_download(job_id, account, expires, signature, runtime.signing_key)
    job = await queue.get(runtime.db, job_id, owner_id)
    if job.status != JobStatus.COMPLETED or not job.output_key or not job.result:
        raise NotFound(f"Job {job_id} has no output (it is {job.status}).")
    now = datetime.now(UTC)
    if job.expired or (job.expires_at is not None and job.expires_at <= now):
        raise Gone(f"The output of job {job_id} has expired.")
    if (
        owner_id is None
        and expires is not None
        and job.expires_at is not None
        and expires != int(job.expires_at.timestamp())
    ):
        raise Unauthorized("The download link's signature is not valid.")
    path = runtime.storage.local_path(job.output_key)
    if path is None:
        return await _stream_output(request, runtime, job, if_none_match)
    if not path.is_file():
        raise Gone(f"The output of job {job_id} is no longer stored.")
    stat = path.stat()
    # The same validator FileResponse sends, so a conditional request can be answered here.
    etag = f'"{hashlib.md5(f"{stat.st_mtime}-{stat.st_size}".encode(), usedforsecurity=False).hexdigest()}"'
    if if_none_match and etag in [tag.strip() for tag in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    return FileResponse(
        path,
        media_type=job.result["content_type"],
        headers={"Content-Disposition": content_disposition(job.result["filename"])},
    )


async def _stream_output(
    request: Request, runtime: Runtime, job: Job, if_none_match: str | None
) -> Response:
    """The output from a store with no local file (a bucket): HEAD, one Range, ETag."""
    assert job.output_key and job.result
    size = await runtime.storage.size(job.output_key)
    if size is None:
        raise Gone(f"The output of job {job.id} is no longer stored.")
    # An output is written once under its key, so the job and the size identify its bytes.
    digest = hashlib.sha256(f"{job.id}-{job.output_key}-{size}".encode()).hexdigest()
    etag = f'"{digest[:32]}"'
    if if_none_match and etag in [tag.strip() for tag in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(job.result["filename"]),
    }
    status, start, end = 200, 0, size - 1
    byte_range = request.headers.get("range")
    if byte_range and request.headers.get("if-range") in (None, etag):
        wanted = _single_range(byte_range, size)
        if wanted is not None:
            status, (start, end) = 206, wanted
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    media_type = job.result["content_type"]
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        runtime.storage.read(job.output_key, start, end),
        status_code=status,
        headers=headers,
        media_type=media_type,
    )


def _single_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a one-range `Range` header asks for; None: the whole file.

    Several ranges, other units and malformed headers are ignored (RFC 9110 14.2), so the
    answer is the whole file; a range wholly past the end is 416.
    """
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not dash or not (first or last):
        return None
    if not all(part.isascii() and part.isdigit() for part in (first, last) if part):
        return None
    if first:
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
        if last and int(last) < start:
            return None
    else:  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    if start > end:
        raise StarletteHTTPException(
            416,
            f"The range {header!r} is outside the file's {size} bytes.",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII `filename` and, when needed, RFC 6266 `filename*`."""
    safe = "".join(ch for ch in filename if ch.isprintable() and ch not in '/\\"')
    fallback = safe.encode("ascii", "replace").decode().replace("?", "_") or "download"
    header = f'attachment; filename="{fallback}"'
    if fallback != safe:
        header += f"; filename*=UTF-8''{quote(safe, safe='')}"
    return header


# The output's own media type (video/mp4, audio/mpeg, image/gif, ...), for a part too.
_OUTPUT_CONTENT = {
    media_type: {"schema": {"type": "string", "format": "binary"}}
    for media_type in ("video/*", "audio/*", "image/gif")
}
_DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": _OUTPUT_CONTENT, "description": "The output file"},
    206: {"content": _OUTPUT_CONTENT, "description": "Part of the output file (Range)"},
    304: {"description": "Not modified"},
    **problem_responses(401, 404, 410, 416),
}
router.add_api_route(
    "/job/{job_id}/output",
    download_output,
    methods=["GET"],
    name="download_output",
    response_class=FileResponse,
    responses=_DOWNLOAD_RESPONSES,
    summary="Download a job's output",
)
router.add_api_route(
    "/job/{job_id}/output",
    download_output,
    methods=["HEAD"],
    name="download_output_head",
    response_class=FileResponse,
    responses=_DOWNLOAD_RESPONSES,
    summary="Size and validators of a job's output",
)

"""Downloads: a completed job's output, for its owner's key or its signed download_url."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from vidq.api.auth import OptionalAccount, RuntimeDep
from vidq.api.http import content_disposition, etag_matches, single_range
from vidq.api.schemas import problem_responses
from vidq.db.models import Job
from vidq.errors import Gone, NotFound, Unauthorized
from vidq.jobs import queue
from vidq.jobs.accounts import Account
from vidq.jobs.signing import signature_valid
from vidq.jobs.states import JobStatus
from vidq.runtime import Runtime

router = APIRouter()


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
    if etag_matches(if_none_match, etag):
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
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(job.result["filename"]),
    }
    status, start, end = 200, 0, size - 1
    byte_range = request.headers.get("range")
    if byte_range and request.headers.get("if-range") in (None, etag):
        wanted = single_range(byte_range, size)
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

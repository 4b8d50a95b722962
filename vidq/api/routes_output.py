"""Downloads: a completed job's output, for its owner's key or its signed download_url."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from vidq.api.auth import OptionalAccount, RuntimeDep
from vidq.api.http import content_disposition, etag_matches, single_range
from vidq.api.schemas import problem_responses
from vidq.errors import Gone
from vidq.jobs import service
from vidq.jobs.runtime import Runtime
from vidq.jobs.service import StoredOutput

router = APIRouter()


async def download_output(
    job_id: str,
    request: Request,
    account: OptionalAccount,
    runtime: RuntimeDep,
    # Read as text and checked by shape in vidq.jobs.signing: any malformed link is 401.
    expires: Annotated[
        str | None, Query(description="Unix seconds, as in the signed `download_url`.")
    ] = None,
    signature: Annotated[
        str | None, Query(description="As in the signed `download_url` (43 base64url characters).")
    ] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The output file, for the owner's key or the signed `download_url`; Range and HEAD work."""
    output = await service.find_output(
        runtime,
        job_id,
        None if account is None else account.id,
        expires=expires,
        signature=signature,
    )
    path = runtime.storage.local_path(output.key)
    if path is None:
        return await _stream_output(request, runtime, output, if_none_match)
    if not path.is_file():
        raise Gone(f"The output of job {job_id} is no longer stored.")
    stat = path.stat()
    # The same validator FileResponse sends, so a conditional request can be answered here.
    etag = f'"{hashlib.md5(f"{stat.st_mtime}-{stat.st_size}".encode(), usedforsecurity=False).hexdigest()}"'
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return FileResponse(
        path,
        media_type=output.content_type,
        headers={"Content-Disposition": content_disposition(output.filename)},
    )


async def _stream_output(
    request: Request, runtime: Runtime, output: StoredOutput, if_none_match: str | None
) -> Response:
    """The output from a store with no local file (a bucket): HEAD, one Range, ETag."""
    size = await runtime.storage.size(output.key)
    if size is None:
        raise Gone(f"The output of job {output.job_id} is no longer stored.")
    # An output is written once under its key, so the job and the size identify its bytes.
    digest = hashlib.sha256(f"{output.job_id}-{output.key}-{size}".encode()).hexdigest()
    etag = f'"{digest[:32]}"'
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(output.filename),
    }
    status, start, end = 200, 0, size - 1
    byte_range = request.headers.get("range")
    if byte_range and request.headers.get("if-range") in (None, etag):
        wanted = single_range(byte_range, size)
        if wanted is not None:
            status, (start, end) = 206, wanted
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    media_type = output.content_type
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        runtime.storage.read(output.key, start, end),
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
    **problem_responses(401, 404, 410, 416, 429),
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

"""Downloads: a completed job's output, for its owner's key or its signed download_url."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from vidq.api.auth import OptionalAccount, RuntimeDep
from vidq.api.http import blob_answer, content_disposition
from vidq.api.schemas import problem_responses
from vidq.jobs import service

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
    """The output file (a streaming package's ZIP), for the owner's key or the signed
    `download_url`; Range and HEAD work. On a bucket it may answer `302` to the bucket."""
    output = await service.find_output(
        runtime,
        job_id,
        None if account is None else account.id,
        expires=expires,
        signature=signature,
    )
    return await blob_answer(
        request,
        runtime.storage,
        output.key,
        media_type=output.content_type,
        expires_at=output.expires_at,
        redirect=runtime.settings.s3_redirect_downloads,
        disposition=content_disposition(output.filename),
    )


# The output's own media type (video/mp4, audio/mpeg, image/gif, application/zip, ...).
_OUTPUT_CONTENT = {
    media_type: {"schema": {"type": "string", "format": "binary"}}
    for media_type in ("video/*", "audio/*", "image/*", "application/zip")
}
_DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": _OUTPUT_CONTENT, "description": "The output file"},
    206: {"content": _OUTPUT_CONTENT, "description": "Part of the output file (Range)"},
    302: {"description": "On a bucket: the output at a short-lived presigned bucket URL"},
    304: {"description": "Not modified"},
    **problem_responses(401, 404, 410, 416, 429),
}
router.add_api_route(
    "/job/{job_id}/output",
    download_output,
    methods=["GET"],
    name="download_output",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,
    summary="Download a job's output",
)
router.add_api_route(
    "/job/{job_id}/output",
    download_output,
    methods=["HEAD"],
    name="download_output_head",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,
    summary="Size and validators of a job's output",
)

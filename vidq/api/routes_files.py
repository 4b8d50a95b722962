"""Files of an output (API.md "Files of an output"): one file of a completed job, for the
owner's key at `/job/{id}/files/{path}` or under the job's signed prefix `/s/<token>/{path}`.

The signed form needs no key and answers any origin (`Access-Control-Allow-Origin: *`,
preflight included), so that a player on another site can load a package: a playlist's
relative references resolve under the same prefix. On a bucket, media files (segments,
init segments, the main file, stills) may answer `302` to a presigned bucket URL;
playlists, manifests and text tracks are always answered here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response

from vidq.api.auth import CurrentAccount, RuntimeDep
from vidq.api.http import blob_answer
from vidq.api.problems import problem
from vidq.api.schemas import problem_responses
from vidq.errors import VidqError
from vidq.jobs import service
from vidq.jobs.runtime import Runtime
from vidq.jobs.service import StoredFile

router = APIRouter()

# On every answer of the signed form, errors too: a player elsewhere may read them all.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Accept-Ranges, Content-Length, Content-Range, ETag",
}
_ALLOWED_METHODS = "GET, HEAD, OPTIONS"
_PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": _ALLOWED_METHODS,
    "Access-Control-Allow-Headers": "Range, If-Range, If-None-Match, If-Modified-Since",
    "Access-Control-Max-Age": "86400",
    "Allow": _ALLOWED_METHODS,
}


async def _file_response(
    request: Request, runtime: Runtime, file: StoredFile, headers: dict[str, str]
) -> Response:
    return await blob_answer(
        request,
        runtime.storage,
        file.key,
        media_type=file.content_type,
        expires_at=file.expires_at,
        redirect=file.redirectable and runtime.settings.s3_redirect_downloads,
        headers=headers,
    )


async def job_file(
    job_id: str,
    path: str,
    request: Request,
    account: CurrentAccount,
    runtime: RuntimeDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """One file of a completed job's output (a path from `result.files`), for the owner's
    key; Range and HEAD work."""
    file = await service.find_file(runtime, job_id, account.id, path)
    return await _file_response(request, runtime, file, {})


async def signed_file(
    token: str,
    path: str,
    request: Request,
    runtime: RuntimeDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """One file of a completed job's output under its signed `result.base_url` (no key),
    for any origin; Range and HEAD work."""
    try:
        file = await service.find_signed_file(runtime, token, path)
        return await _file_response(request, runtime, file, dict(CORS_HEADERS))
    except VidqError as exc:
        return problem(
            exc.status,
            exc.code,
            exc.detail,
            title=exc.title,
            headers={**exc.headers(), **CORS_HEADERS},
            **exc.members(),
        )


async def signed_file_preflight(token: str, path: str) -> Response:
    """CORS preflight of the signed form: any origin may GET and HEAD, with Range."""
    return Response(status_code=204, headers=_PREFLIGHT_HEADERS)


_FILE_CONTENT = {
    media_type: {"schema": {"type": "string", "format": "binary"}}
    for media_type in (
        "application/vnd.apple.mpegurl",
        "application/dash+xml",
        "video/*",
        "audio/*",
        "image/*",
        "text/vtt",
        "application/x-subrip",
        "application/octet-stream",
    )
}
_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": _FILE_CONTENT, "description": "The file, with its own media type"},
    206: {"content": _FILE_CONTENT, "description": "Part of the file (Range)"},
    302: {"description": "On a bucket: a media file at a short-lived presigned bucket URL"},
    304: {"description": "Not modified"},
    **problem_responses(401, 404, 410, 416),
}
# The owner's route counts against the key's rate limit; the signed form has no key.
_OWNER_FILE_RESPONSES = {**_FILE_RESPONSES, **problem_responses(429)}
for method in ("GET", "HEAD"):
    suffix = "" if method == "GET" else "_head"
    router.add_api_route(
        "/job/{job_id}/files/{path:path}",
        job_file,
        methods=[method],
        name=f"job_file{suffix}",
        response_class=Response,
        responses=_OWNER_FILE_RESPONSES,
        summary="One file of a job's output"
        if method == "GET"
        else "Size and validators of one file",
    )
    router.add_api_route(
        "/s/{token}/{path:path}",
        signed_file,
        methods=[method],
        name=f"signed_file{suffix}",
        response_class=Response,
        responses=_FILE_RESPONSES,
        summary="One file under a job's signed base_url"
        if method == "GET"
        else "Size and validators of one file under a signed base_url",
    )
router.add_api_route(
    "/s/{token}/{path:path}",
    signed_file_preflight,
    methods=["OPTIONS"],
    name="signed_file_preflight",
    include_in_schema=False,
)

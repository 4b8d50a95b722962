"""Resumable uploads at `/uploads`: the tus 1.0.0 protocol, for the owner's key.

Core protocol (HEAD for the offset, PATCH to append) with the `creation`,
`creation-with-upload`, `termination`, `expiration` and `checksum` (sha1, sha256)
extensions, written against the specification (https://tus.io/protocols/resumable-upload):
what an upload is, and where its bytes go, is `vidq.jobs.resumable`; this module reads
and writes the protocol's headers. Every answer under /uploads carries `Tus-Resumable`
(`TusResumableHeader`), errors as problem+json like everywhere else: 412 without a
supported `Tus-Resumable`, 404 for an upload that is unknown or another owner's, 410
once it has expired, 409 for an `Upload-Offset` that is not the upload's, 413 past
`Upload-Length` or `Tus-Max-Size`, 415 for a chunk not sent as
`application/offset+octet-stream`, 460 for a chunk whose `Upload-Checksum` does not match.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidq.api.auth import CurrentAccount, RuntimeDep
from vidq.api.schemas import problem_responses
from vidq.api.uploads import UploadSlots, body_chunks
from vidq.errors import (
    BadRequest,
    ChecksumMismatch,
    PreconditionFailed,
    RequestTimeout,
    UnsupportedContentType,
    UploadTooLarge,
)
from vidq.jobs import resumable
from vidq.jobs.filenames import clean_filename
from vidq.jobs.resumable import CHECKSUM_ALGORITHMS, Checksum, Upload
from vidq.jobs.strict import whole_number

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
CHUNK_TYPE = "application/offset+octet-stream"
MAX_METADATA_CHARS = 4096
PREFIX = "/uploads"

router = APIRouter()

UploadId = Annotated[str, Path(description="The upload's id: the end of its URL.")]


class TusResumableHeader:
    """Adds `Tus-Resumable: 1.0.0` to every answer under /uploads, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"tus-resumable", TUS_VERSION.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


def _tus_resumable(
    account: CurrentAccount, tus_resumable: Annotated[str | None, Header()] = None
) -> None:
    """412 unless the client speaks the protocol's version this server does (checked once
    the key is: a request without one is 401 first)."""
    if tus_resumable != TUS_VERSION:
        raise PreconditionFailed(
            f"Send Tus-Resumable: {TUS_VERSION}; this server speaks tus {TUS_VERSION} only."
        )


Tus = Depends(_tus_resumable)


def _number(name: str, value: str | None) -> int:
    if value is None:
        raise BadRequest(f"The {name} header is missing.")
    number = whole_number(value.strip())
    if number is None:
        raise BadRequest(f"{name} must be a whole number of bytes, in digits.")
    return number


def _metadata(header: str | None) -> dict[str, bytes | None]:
    """The pairs of an Upload-Metadata header: keys with their decoded values."""
    if header is None or not header.strip():
        return {}
    if len(header) > MAX_METADATA_CHARS:
        raise BadRequest(f"Upload-Metadata is longer than {MAX_METADATA_CHARS} characters.")
    pairs: dict[str, bytes | None] = {}
    for item in header.split(","):
        key, _, encoded = item.strip().partition(" ")
        if not key or not key.isascii() or not key.isprintable() or key in pairs:
            raise BadRequest("Upload-Metadata must be comma-separated `key base64` pairs.")
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True) if encoded else None
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"Upload-Metadata {key!r} is not base64.") from exc
    return pairs


def _text(pairs: dict[str, bytes | None], key: str) -> str | None:
    value = pairs.get(key)
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"Upload-Metadata {key!r} is not UTF-8 text.") from exc


def _checksum(header: str | None) -> Checksum | None:
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise BadRequest(
            f"Upload-Checksum: this server checks {', '.join(CHECKSUM_ALGORITHMS)} only."
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("Upload-Checksum must be `algorithm base64-digest`.") from exc
    if len(digest) != CHECKSUM_ALGORITHMS[algorithm]().digest_size:
        raise BadRequest(f"Upload-Checksum: that is not a {algorithm} digest.")
    return Checksum(algorithm, digest)


def _http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def _progress_headers(upload: Upload) -> dict[str, str]:
    headers = {"Upload-Offset": str(upload.offset_bytes)}
    if upload.finished_at is None:
        headers["Upload-Expires"] = _http_date(upload.expires_at)
    return headers


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return whole_number(value) if value else None


def _is_chunk(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == CHUNK_TYPE


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length != "0")


@router.options(
    PREFIX,
    status_code=204,
    responses=problem_responses(401, 429),
    summary="What the tus server supports",
)
async def tus_options(account: CurrentAccount, runtime: RuntimeDep) -> Response:
    """The protocol's version, extensions, largest upload and checksum algorithms."""
    return Response(
        status_code=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(runtime.settings.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
        },
    )


@router.post(
    PREFIX,
    status_code=201,
    dependencies=[Tus],
    responses={
        201: {"description": "Created: the upload's URL is the Location"},
        **problem_responses(400, 401, 408, 412, 413, 415, 429, 503, 507),
    },
    summary="Create a resumable upload",
)
async def create_upload(
    request: Request,
    account: CurrentAccount,
    runtime: RuntimeDep,
    upload_length: Annotated[str | None, Header()] = None,
    upload_metadata: Annotated[str | None, Header()] = None,
    upload_defer_length: Annotated[str | None, Header()] = None,
    upload_checksum: Annotated[str | None, Header()] = None,
) -> Response:
    """tus `creation`: a new upload of `Upload-Length` bytes; with `creation-with-upload`
    its first chunk may come in the same request."""
    if upload_defer_length is not None:
        raise BadRequest("Upload-Defer-Length is not supported: send Upload-Length.")
    length = _number("Upload-Length", upload_length)
    pairs = _metadata(upload_metadata)
    with_chunk = _is_chunk(request)
    if not with_chunk and _has_body(request):
        raise UnsupportedContentType(f"Send the upload's first chunk as {CHUNK_TYPE}.")
    checksum = _checksum(upload_checksum)
    filename = _text(pairs, "filename")
    upload = await resumable.create(
        runtime,
        account.id,
        length=length,
        filename=None if filename is None else clean_filename(filename),
        content_type=_text(pairs, "filetype"),
        metadata=upload_metadata if pairs else None,
    )
    if with_chunk and upload.finished_at is None:
        slots: UploadSlots = request.app.state.upload_slots
        with slots.take():
            try:
                upload = await resumable.append(
                    runtime,
                    account.id,
                    upload.id,
                    offset=0,
                    chunks=body_chunks(request, runtime.settings.body_idle_timeout_seconds),
                    checksum=checksum,
                    declared_bytes=_declared_length(request),
                )
            except (BadRequest, RequestTimeout, ChecksumMismatch, UploadTooLarge):
                # The upload exists; what its first chunk left is in Upload-Offset.
                upload = await resumable.find(runtime, account.id, upload.id)
    base_url = runtime.base_url_for(str(request.base_url))
    headers = {"Location": f"{base_url}{PREFIX}/{upload.id}", **_progress_headers(upload)}
    return Response(status_code=201, headers=headers)


@router.head(
    PREFIX + "/{upload_id}",
    dependencies=[Tus],
    responses={
        200: {"description": "Upload-Offset and Upload-Length say how far it got"},
        **problem_responses(401, 404, 410, 412, 429),
    },
    summary="How far an upload got",
)
async def upload_offset(
    upload_id: UploadId, account: CurrentAccount, runtime: RuntimeDep
) -> Response:
    """The upload's offset (bytes kept), length, metadata and (unfinished) expiry."""
    upload = await resumable.find(runtime, account.id, upload_id)
    headers = {
        **_progress_headers(upload),
        "Upload-Length": str(upload.length_bytes),
        "Cache-Control": "no-store",
    }
    if upload.upload_metadata is not None:
        headers["Upload-Metadata"] = upload.upload_metadata
    return Response(status_code=200, headers=headers)


@router.patch(
    PREFIX + "/{upload_id}",
    status_code=204,
    dependencies=[Tus],
    responses={
        204: {"description": "The chunk was kept: Upload-Offset is the new offset"},
        460: {"description": "Checksum mismatch: nothing of the chunk was kept"},
        **problem_responses(400, 401, 404, 408, 409, 410, 412, 413, 415, 429, 503, 507),
    },
    summary="Append a chunk to an upload",
)
async def append_chunk(
    request: Request,
    upload_id: UploadId,
    account: CurrentAccount,
    runtime: RuntimeDep,
    upload_offset: Annotated[str | None, Header()] = None,
    upload_checksum: Annotated[str | None, Header()] = None,
) -> Response:
    """Append the body at `Upload-Offset`, which must be the upload's offset."""
    if not _is_chunk(request):
        raise UnsupportedContentType(f"Send the chunk as {CHUNK_TYPE}.")
    offset = _number("Upload-Offset", upload_offset)
    checksum = _checksum(upload_checksum)
    slots: UploadSlots = request.app.state.upload_slots
    with slots.take():
        upload = await resumable.append(
            runtime,
            account.id,
            upload_id,
            offset=offset,
            chunks=body_chunks(request, runtime.settings.body_idle_timeout_seconds),
            checksum=checksum,
            declared_bytes=_declared_length(request),
        )
    return Response(status_code=204, headers=_progress_headers(upload))


@router.delete(
    PREFIX + "/{upload_id}",
    status_code=204,
    dependencies=[Tus],
    responses=problem_responses(401, 404, 409, 410, 412, 429),
    summary="End an upload",
)
async def terminate_upload(
    upload_id: UploadId, account: CurrentAccount, runtime: RuntimeDep
) -> Response:
    """tus `termination`: the upload and its bytes are removed (unless a job took them)."""
    await resumable.terminate(runtime, account.id, upload_id)
    return Response(status_code=204)

"""HTTP details the routes share: conditional requests, byte ranges, download names, and
serving a stored blob with all of them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from vidq.clock import utcnow
from vidq.errors import Gone, RangeNotSatisfiable
from vidq.storage import Storage


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (so the answer is 304)."""
    if not if_none_match:
        return False
    return etag in (tag.strip() for tag in if_none_match.split(","))


def single_range(header: str, size: int) -> tuple[int, int] | None:
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
        start, end = _offset(first), min(_offset(last) if last else size - 1, size - 1)
        if last and _offset(last) < start:
            return None
    else:  # the last N bytes
        start, end = max(0, size - _offset(last)), size - 1
    if start > end:
        raise RangeNotSatisfiable(
            f"The range {header!r} is outside the file's {size} bytes.", size=size
        )
    return start, end


def _offset(digits: str) -> int:
    """A byte offset from a Range header; any number past 2**63 counts as 2**63 (int()
    refuses strings of more than 4300 digits, and no file is that large anyway)."""
    return int(digits) if len(digits) <= 18 else 2**63


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII `filename` and, when needed, RFC 6266 `filename*`."""
    safe = "".join(ch for ch in filename if ch.isprintable() and ch not in '/\\"')
    fallback = safe.encode("ascii", "replace").decode().replace("?", "_") or "download"
    header = f'attachment; filename="{fallback}"'
    if fallback != safe:
        header += f"; filename*=UTF-8''{quote(safe, safe='')}"
    return header


async def _validators(storage: Storage, key: str) -> tuple[int, str]:
    """The stored blob's size and strong ETag; 410 if it is no longer stored."""
    path = storage.local_path(key)
    if path is not None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise Gone("The file is no longer stored.") from None
        # The validator Starlette's FileResponse sends, so ETags stay what they were.
        seed = f"{stat.st_mtime}-{stat.st_size}"
        return stat.st_size, f'"{hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest()}"'
    size = await storage.size(key)
    if size is None:
        raise Gone("The file is no longer stored.")
    # A blob is written once under its key, so the key and the size identify its bytes.
    return size, f'"{hashlib.sha256(f"{key}-{size}".encode()).hexdigest()[:32]}"'


async def stored_response(
    request: Request,
    storage: Storage,
    key: str,
    *,
    media_type: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A stored blob as the answer to GET or HEAD, from any store: `ETag` and
    `If-None-Match` (304), one `Range` (206; 416 past the end) honouring `If-Range`."""
    size, etag = await _validators(storage, key)
    answer = {**(headers or {}), "ETag": etag}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=answer)
    answer["Accept-Ranges"] = "bytes"
    status, start, end = 200, 0, size - 1
    byte_range = request.headers.get("range")
    if byte_range and request.headers.get("if-range") in (None, etag):
        wanted = single_range(byte_range, size)
        if wanted is not None:
            status, (start, end) = 206, wanted
            answer["Content-Range"] = f"bytes {start}-{end}/{size}"
    answer["Content-Length"] = str(end - start + 1)
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=answer, media_type=media_type)
    chunks = storage.read(key, start, end) if status == 206 else storage.read(key)
    return StreamingResponse(chunks, status_code=status, headers=answer, media_type=media_type)


# How long a presigned bucket URL lives: long enough to start a download, short enough that
# a leaked one is soon useless. A transfer that has started is not cut at the end.
PRESIGNED_URL_SECONDS = 300


async def presigned_redirect(
    storage: Storage,
    key: str,
    *,
    expires_at: datetime | None,
    media_type: str,
    disposition: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response | None:
    """`302` to a short-lived URL that fetches the blob straight from the store (never past
    `expires_at`); None when the store cannot make one (a local directory)."""
    seconds = PRESIGNED_URL_SECONDS
    if expires_at is not None:
        seconds = min(seconds, int((expires_at - utcnow()).total_seconds()))
    if seconds < 1:
        return None
    url = await storage.presigned_url(
        key, seconds, content_type=media_type, disposition=disposition
    )
    if url is None:
        return None
    return Response(status_code=302, headers={**(headers or {}), "Location": url})


async def blob_answer(
    request: Request,
    storage: Storage,
    key: str,
    *,
    media_type: str,
    expires_at: datetime | None,
    redirect: bool,
    disposition: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A stored blob: with `redirect`, a `302` to the store itself where it can make one
    (a bucket), else the bytes from here (`stored_response`)."""
    answer = {**(headers or {})}
    if disposition is not None:
        answer["Content-Disposition"] = disposition
    if redirect:
        moved = await presigned_redirect(
            storage,
            key,
            expires_at=expires_at,
            media_type=media_type,
            disposition=disposition,
            headers=headers,
        )
        if moved is not None:
            return moved
    return await stored_response(request, storage, key, media_type=media_type, headers=answer)

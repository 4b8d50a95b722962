"""Inputs that are not sent in the /convert request itself: a URL the service fetches
(`convert_url`), and a resumable (tus 1.0.0) upload (`upload_resumable`), converted with
`convert_upload`. Mixed into VidqClient, which provides `_http` and `_check`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

import httpx

# Bytes per PATCH, streamed from the file (never held whole): large enough that a
# request's own cost (about 10 ms of the server's CPU) is small beside its bytes, and that
# a fast upload stays below a key's request rate (bench/README.md). A broken connection
# loses nothing of it: the service keeps what arrived (without a checksum).
TUS_CHUNK_BYTES = 64 * 1024 * 1024
TUS_HEADERS = {"Tus-Resumable": "1.0.0"}
TUS_RETRIES = 3
TUS_RETRY_SECONDS = 1.0
# How many times in a row a tus request waits out `429 rate_limited` before giving up.
TUS_RATE_LIMIT_WAITS = 30
READ_BYTES = 1024 * 1024

Checksum = Literal["sha1", "sha256"]


def _file_range(handle: BinaryIO, offset: int, length: int) -> Iterator[bytes]:
    """The bytes [offset, offset + length) of an open file, a piece at a time."""
    handle.seek(offset)
    while length > 0 and (piece := handle.read(min(READ_BYTES, length))):
        length -= len(piece)
        yield piece


class _Conflict(Exception):
    """A PATCH answered 409: the offset moved, or a broken request still holds the upload."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response


class ResumableUploads:
    """`convert_url`, `upload_resumable` and `convert_upload` for VidqClient."""

    _http: httpx.Client
    _check: Callable[[httpx.Response], httpx.Response]

    def convert_url(
        self, url: str, *, idempotency_key: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """Have the service fetch the input from `url` (http or https) and convert it; returns
        the queued Job (its `input` is filled in once a worker has fetched the file)."""
        return self._convert_json({"source_url": url}, idempotency_key, options)

    def convert_upload(
        self, upload_id: str, *, idempotency_key: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """Convert a finished resumable upload (`upload_resumable`); returns the queued Job."""
        return self._convert_json({"upload_id": upload_id}, idempotency_key, options)

    def _convert_json(
        self, source: dict[str, str], idempotency_key: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        body = {**source, **{k: v for k, v in options.items() if v is not None}}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self._http.post("/convert", json=body, headers=headers)
        job: dict[str, Any] = self._check(response).json()
        return job

    def upload_resumable(
        self,
        path: str | Path,
        *,
        chunk_size: int = TUS_CHUNK_BYTES,
        upload_url: str | None = None,
        created: Callable[[str], None] | None = None,
        retries: int = TUS_RETRIES,
        checksum: Checksum | None = None,
    ) -> str:
        """Send a file as a resumable (tus 1.0.0) upload, a chunk per request streamed from
        the file; returns the upload's id, for `convert_upload`.

        A new upload is created unless `upload_url` names an earlier one of the same file,
        which is then continued from the offset the service reports. `created` is told the
        URL of a new upload before its first byte is sent (keep it to resume after a crash).
        A broken connection (or a 409) is retried `retries` times, each from the service's
        offset; a `429 rate_limited` is waited out. With `checksum`, each chunk carries its
        digest and the service keeps it only if its bytes match; it costs a hash of every
        byte on both sides (bench/README.md).
        """
        path = Path(path)
        size = path.stat().st_size
        if upload_url is None:
            upload_url = self._create_upload(path.name, size)
            if created is not None:
                created(upload_url)
        offset = self._upload_offset(upload_url, size)
        failures = 0
        with path.open("rb") as handle:
            while offset < size:
                length = min(chunk_size, size - offset)
                try:
                    offset = self._send_chunk(upload_url, handle, offset, length, checksum)
                    continue
                except (_Conflict, httpx.TransportError) as exc:
                    # A broken connection (the bytes that arrived were kept), or a 409.
                    failures += 1
                    if failures > retries:
                        if isinstance(exc, _Conflict):
                            self._check(exc.response)
                        raise
                time.sleep(TUS_RETRY_SECONDS)
                offset = self._upload_offset(upload_url, size)
        return upload_url.rstrip("/").rsplit("/", 1)[-1]

    def _tus(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Callable[[], Iterator[bytes]] | None = None,
    ) -> httpx.Response:
        """A tus request, waiting out `429 rate_limited` as its Retry-After says (a fast
        upload in small chunks can pass a key's request rate). Not checked."""
        for _ in range(TUS_RATE_LIMIT_WAITS):
            content = None if body is None else body()
            response = self._http.request(method, url, headers=headers, content=content)
            if response.status_code != 429:
                break
            retry_after = response.headers.get("retry-after", "")
            time.sleep(float(retry_after) if retry_after.isdigit() else 1.0)
        return response

    def _create_upload(self, filename: str, size: int) -> str:
        name = base64.b64encode(filename.encode("utf-8")).decode("ascii")
        headers = {**TUS_HEADERS, "Upload-Length": str(size), "Upload-Metadata": f"filename {name}"}
        response = self._check(self._tus("POST", "/uploads", headers))
        return str(response.headers["location"])

    def _upload_offset(self, upload_url: str, size: int) -> int:
        response = self._check(self._tus("HEAD", upload_url, TUS_HEADERS))
        if int(response.headers["upload-length"]) != size:
            raise ValueError(f"the upload at {upload_url} is not of this file's {size} bytes")
        return int(response.headers["upload-offset"])

    def _send_chunk(
        self,
        upload_url: str,
        handle: BinaryIO,
        offset: int,
        length: int,
        checksum: Checksum | None,
    ) -> int:
        """PATCH the file's bytes [offset, offset + length), streamed from it (read twice
        with a checksum: once to hash, once to send); the upload's new offset."""
        headers = {
            **TUS_HEADERS,
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(length),
            "Upload-Offset": str(offset),
        }
        if checksum is not None:
            hasher = hashlib.new(checksum)
            for piece in _file_range(handle, offset, length):
                hasher.update(piece)
            digest = base64.b64encode(hasher.digest()).decode("ascii")
            headers["Upload-Checksum"] = f"{checksum} {digest}"
        response = self._tus(
            "PATCH", upload_url, headers, lambda: _file_range(handle, offset, length)
        )
        if response.status_code == 409:
            raise _Conflict(response)
        return int(self._check(response).headers["upload-offset"])

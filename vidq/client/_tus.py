"""Inputs that are not sent in the /convert request itself: a URL the service fetches
(`convert_url`), and a resumable (tus 1.0.0) upload (`upload_resumable`), converted with
`convert_upload`; `convert_resumable` does both, remembering the upload in an
`UploadStore` so that a later run continues it. Mixed into VidqClient, which provides
`base_url`, `_http` and `_check`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

import httpx

from vidq.client._errors import VidqAPIError
from vidq.client._resume import FileIdentity, UploadStore

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
# What the service answers for an upload it no longer has: unknown (404), expired (410).
UPLOAD_GONE = (404, 410)
# Refusals after which a finished upload is of no more use: the file is not media, or the
# upload was used (or expired) meanwhile. After any other, it is kept for another try.
UPLOAD_SPENT = ("unsupported_media", "invalid_source")

Checksum = Literal["sha1", "sha256"]
# Told the bytes of the file the service has so far.
Progress = Callable[[int], None]


def _file_range(
    handle: BinaryIO, offset: int, length: int, on_progress: Progress | None = None
) -> Iterator[bytes]:
    """The bytes [offset, offset + length) of an open file, a piece at a time; each piece
    taken is told to `on_progress` (as the offset after it)."""
    handle.seek(offset)
    while length > 0 and (piece := handle.read(min(READ_BYTES, length))):
        length -= len(piece)
        yield piece
        offset += len(piece)
        if on_progress is not None:
            on_progress(offset)


class _Conflict(Exception):
    """A PATCH answered 409: the offset moved, or a broken request still holds the upload."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response


class ResumableUploads:
    """`convert_url`, `upload_resumable` and `convert_upload` for VidqClient."""

    base_url: str
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

    def check_options(self, **options: Any) -> None:
        """Have the service check options as a conversion would, with no input
        (`POST /convert?dry_run=true`): VidqAPIError (`422`) if it refuses one. Before a
        resumable upload, whose options are otherwise seen only after its last byte."""
        body = {k: v for k, v in options.items() if v is not None}
        self._check(self._http.post("/convert", params={"dry_run": "true"}, json=body))

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
        on_progress: Progress | None = None,
    ) -> str:
        """Send a file as a resumable (tus 1.0.0) upload, a chunk per request streamed from
        the file; returns the upload's id, for `convert_upload`.

        A new upload is created unless `upload_url` names an earlier one of the same file,
        which is then continued from the offset the service reports. `created` is told the
        URL of a new upload before its first byte is sent (keep it to resume after a crash).
        A broken connection (or a 409) is retried `retries` times, each from the service's
        offset; a `429 rate_limited` is waited out. With `checksum`, each chunk carries its
        digest and the service keeps it only if its bytes match; it costs a hash of every
        byte on both sides (bench/README.md). `on_progress` is told the bytes the service has:
        first its offset, then as the file is sent.
        """
        path = Path(path)
        size = path.stat().st_size
        if upload_url is None:
            upload_url = self._create_upload(path.name, size)
            if created is not None:
                created(upload_url)
            offset = 0  # a new upload holds nothing yet: no need to ask
        else:
            offset = self._upload_offset(upload_url, size)
        if on_progress is not None:
            on_progress(offset)
        failures = 0
        with path.open("rb") as handle:
            while offset < size:
                length = min(chunk_size, size - offset)
                try:
                    offset = self._send_chunk(
                        upload_url, handle, offset, length, checksum, on_progress
                    )
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

    def convert_resumable(
        self,
        path: str | Path,
        *,
        store: UploadStore | None = None,
        resume: bool = True,
        idempotency_key: str | None = None,
        on_progress: Progress | None = None,
        on_resume: Progress | None = None,
        chunk_size: int = TUS_CHUNK_BYTES,
        checksum: Checksum | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Send a file as a resumable upload and convert it (`upload_resumable`, then
        `convert_upload`); returns the queued Job. With a `store`, the upload is remembered
        there from before its first byte until its job is made, so that a run cut short
        (a crash, Ctrl-C, a network gone for good) can be run again and go on.

        With `resume`, an upload that `store` remembers of this file on this service, the
        file unchanged since (size, modification time, first MiB), is continued from the
        service's offset (`on_resume` is told it) unless the service no longer has it
        (404, 410: it expired); otherwise a new one is made. The job is asked for with
        `idempotency_key`, by default one made of the upload's id, so that a run that
        ended between upload and job gets, run again, the job it had made. The upload is
        forgotten once its job is made, or refused for good (`unsupported_media`,
        `invalid_source`); after a refused option it stays, to be converted with others.
        """
        path = Path(path)
        file = FileIdentity.of(path)
        stored = store.find(self.base_url, path) if store is not None and resume else None
        upload_id = None
        if stored is not None and stored.file == file:
            told: list[int] = []

            def resumed(offset: int) -> None:
                if not told and on_resume is not None:
                    on_resume(offset)
                told.append(offset)
                if on_progress is not None:
                    on_progress(offset)

            try:
                upload_id = self.upload_resumable(
                    path,
                    upload_url=stored.upload_url,
                    chunk_size=chunk_size,
                    checksum=checksum,
                    on_progress=resumed,
                )
            except VidqAPIError as exc:
                if exc.status not in UPLOAD_GONE:
                    raise
        if upload_id is None:

            def created(url: str) -> None:
                if store is not None:
                    store.remember(self.base_url, file, url)

            upload_id = self.upload_resumable(
                path,
                chunk_size=chunk_size,
                checksum=checksum,
                created=created,
                on_progress=on_progress,
            )
        try:
            job = self.convert_upload(
                upload_id, idempotency_key=idempotency_key or f"vidq-upload-{upload_id}", **options
            )
        except VidqAPIError as exc:
            if store is not None and exc.code in UPLOAD_SPENT:
                store.forget(self.base_url, path)
            raise
        if store is not None:
            store.forget(self.base_url, path)
        return job

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
        on_progress: Progress | None = None,
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
            "PATCH", upload_url, headers, lambda: _file_range(handle, offset, length, on_progress)
        )
        if response.status_code == 409:
            raise _Conflict(response)
        return int(self._check(response).headers["upload-offset"])

"""A small Python client for the vidq API; the `vidq` command's client verbs use it.

from vidq.client import VidqClient
with VidqClient("http://127.0.0.1:8000", api_key) as client:
    job = client.convert("holiday.mov", preset="mp4-h264-720p")
    job = client.wait(job["id"])
    client.download(job["id"], "holiday.mp4")

A file may also be fetched by the service (`convert_url`), or sent as a resumable (tus)
upload that survives broken connections and is then converted (`upload_resumable`,
`convert_upload`).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal

import httpx

FINISHED = ("completed", "failed", "cancelled")
CHUNK_BYTES = 1024 * 1024
# Bytes per PATCH of a resumable upload, streamed from the file (never held whole): large
# enough that a request's own cost (about 10 ms of the server's CPU) is small beside its
# bytes, and that a fast upload stays below a key's request rate (bench/README.md). A
# broken connection loses nothing of it: the service keeps what arrived (without a checksum).
TUS_CHUNK_BYTES = 64 * 1024 * 1024
TUS_HEADERS = {"Tus-Resumable": "1.0.0"}
TUS_RETRIES = 3
TUS_RETRY_SECONDS = 1.0
# How many times in a row a tus request waits out `429 rate_limited` before giving up.
TUS_RATE_LIMIT_WAITS = 30


class VidqAPIError(Exception):
    """The service answered with a problem (RFC 9457); `status`, `code` and `detail` say which."""

    def __init__(self, status: int, code: str, detail: str, body: dict[str, Any]) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body
        super().__init__(f"{status} {code}: {detail}")


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def _file_range(handle: BinaryIO, offset: int, length: int) -> Iterator[bytes]:
    """The bytes [offset, offset + length) of an open file, a piece at a time."""
    handle.seek(offset)
    while length > 0 and (piece := handle.read(min(CHUNK_BYTES, length))):
        length -= len(piece)
        yield piece


class VidqClient:
    """Talks to one vidq service with one API key."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 120.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def __enter__(self) -> VidqClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code < 400:
            return response
        try:
            body = response.json()
        except ValueError:
            body = {}
        raise VidqAPIError(
            response.status_code,
            str(body.get("code", "error")),
            str(body.get("detail", response.text[:200])),
            body,
        )

    def convert(
        self, path: str | Path, *, idempotency_key: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """Upload a file (streamed, never read whole) with options; returns the queued Job."""
        path = Path(path)
        params = {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in options.items()
            if v is not None
        }
        params["filename"] = path.name
        headers = {"Content-Type": "application/octet-stream"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = self._http.post(
            "/convert", params=params, content=_file_chunks(path), headers=headers
        )
        job: dict[str, Any] = self._check(response).json()
        return job

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
        checksum: Literal["sha1", "sha256"] | None = None,
    ) -> str:
        """Send a file as a resumable (tus 1.0.0) upload, a chunk per request; returns the
        upload's id, for `convert_upload`.

        A new upload is created unless `upload_url` names an earlier one of the same file,
        which is then continued from the offset the service reports. `created` is told the
        URL of a new upload before its first byte is sent (keep it to resume after a crash).
        A broken connection is retried `retries` times, each from the service's offset; a
        `429 rate_limited` is waited out.
        With `checksum`, each chunk carries its digest and the service keeps it only if
        its bytes match; it costs a hash of every byte on both sides (bench/README.md).
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
                except httpx.TransportError as exc:
                    error: Exception = exc  # a broken connection: what arrived was kept
                except VidqAPIError as exc:
                    # 409: the offset moved, or a broken request still holds the upload.
                    if exc.status != 409:
                        raise
                    error = exc
                failures += 1
                if failures > retries:
                    raise error
                time.sleep(TUS_RETRY_SECONDS)
                offset = self._upload_offset(upload_url, size)
        return upload_url.rstrip("/").rsplit("/", 1)[-1]

    def _tus(
        self, method: str, url: str, headers: dict[str, str], body: Callable[[], Any] | None = None
    ) -> httpx.Response:
        """A tus request, waiting out `429 rate_limited` as its Retry-After says (a fast
        upload in small chunks can pass a key's request rate)."""
        for _ in range(TUS_RATE_LIMIT_WAITS):
            content = None if body is None else body()
            response = self._http.request(method, url, headers=headers, content=content)
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("retry-after", "1")))
        return self._check(response)

    def _create_upload(self, filename: str, size: int) -> str:
        name = base64.b64encode(filename.encode("utf-8")).decode("ascii")
        headers = {
            **TUS_HEADERS,
            "Upload-Length": str(size),
            "Upload-Metadata": f"filename {name}",
        }
        response = self._tus("POST", "/uploads", headers)
        return str(response.headers["location"])

    def _upload_offset(self, upload_url: str, size: int) -> int:
        response = self._tus("HEAD", upload_url, TUS_HEADERS)
        if int(response.headers["upload-length"]) != size:
            raise ValueError(f"the upload at {upload_url} is not of this file's {size} bytes")
        return int(response.headers["upload-offset"])

    def _send_chunk(
        self, upload_url: str, handle: BinaryIO, offset: int, length: int, checksum: str | None
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
        return int(response.headers["upload-offset"])

    def job(self, job_id: str, *, wait: float | None = None) -> dict[str, Any]:
        """The Job now, or (with `wait`) once it ends or `wait` seconds pass."""
        params = {"wait": wait} if wait else None
        job: dict[str, Any] = self._check(self._http.get(f"/job/{job_id}", params=params)).json()
        return job

    def wait(self, job_id: str, *, timeout: float = 3600.0) -> dict[str, Any]:
        """Block until the job ends (or `timeout` passes); returns the Job."""
        deadline = time.monotonic() + timeout
        job = self.job(job_id)
        while job["status"] not in FINISHED and (left := deadline - time.monotonic()) > 0:
            job = self.job(job_id, wait=min(60.0, max(1.0, left)))
        return job

    def jobs(self, *, status: list[str] | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Your jobs, newest first (one page)."""
        params: list[tuple[str, str | int | float | bool | None]] = [("limit", limit)] + [
            ("status", s) for s in status or []
        ]
        jobs: list[dict[str, Any]] = self._check(self._http.get("/jobs", params=params)).json()[
            "jobs"
        ]
        return jobs

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Stop a queued or running job, keeping its record."""
        job: dict[str, Any] = self._check(self._http.post(f"/job/{job_id}/cancel")).json()
        return job

    def delete(self, job_id: str) -> None:
        """Remove a job and its files (stopping it first if it runs)."""
        self._check(self._http.delete(f"/job/{job_id}"))

    def download(self, job_id: str, destination: str | Path) -> Path:
        """Save a completed job's output to `destination`; returns the path."""
        destination = Path(destination)
        partial = destination.with_name(destination.name + ".part")
        # On a bucket the service may redirect to it (httpx drops the key for another host).
        with self._http.stream("GET", f"/job/{job_id}/output", follow_redirects=True) as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            with partial.open("wb") as handle:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    handle.write(chunk)
        partial.replace(destination)
        return destination

    def presets(self) -> list[dict[str, Any]]:
        """The presets the service offers."""
        presets: list[dict[str, Any]] = self._check(self._http.get("/presets")).json()["presets"]
        return presets

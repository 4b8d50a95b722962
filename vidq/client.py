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
from typing import Any

import httpx

FINISHED = ("completed", "failed", "cancelled")
CHUNK_BYTES = 1024 * 1024
# Bytes per PATCH of a resumable upload: large enough that a request's cost is small beside
# its bytes (bench/README.md), small enough that a broken connection loses little.
TUS_CHUNK_BYTES = 16 * 1024 * 1024
TUS_HEADERS = {"Tus-Resumable": "1.0.0"}
TUS_RETRIES = 3
TUS_RETRY_SECONDS = 1.0


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
    ) -> str:
        """Send a file as a resumable (tus 1.0.0) upload, a chunk per request (each with its
        SHA-256, checked by the service); returns the upload's id, for `convert_upload`.

        A new upload is created unless `upload_url` names an earlier one of the same file,
        which is then continued from the offset the service reports. `created` is told the
        URL of a new upload before its first byte is sent (keep it to resume after a crash).
        A broken connection is retried `retries` times, each from the service's offset.
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
                handle.seek(offset)
                chunk = handle.read(min(chunk_size, size - offset))
                try:
                    offset = self._send_chunk(upload_url, offset, chunk)
                except httpx.TransportError:
                    failures += 1
                    if failures > retries:
                        raise
                    time.sleep(TUS_RETRY_SECONDS)
                    offset = self._upload_offset(upload_url, size)
        return upload_url.rstrip("/").rsplit("/", 1)[-1]

    def _create_upload(self, filename: str, size: int) -> str:
        name = base64.b64encode(filename.encode("utf-8")).decode("ascii")
        headers = {
            **TUS_HEADERS,
            "Upload-Length": str(size),
            "Upload-Metadata": f"filename {name}",
        }
        response = self._check(self._http.post("/uploads", headers=headers))
        return str(response.headers["location"])

    def _upload_offset(self, upload_url: str, size: int) -> int:
        response = self._check(self._http.head(upload_url, headers=TUS_HEADERS))
        if int(response.headers["upload-length"]) != size:
            raise ValueError(f"the upload at {upload_url} is not of this file's {size} bytes")
        return int(response.headers["upload-offset"])

    def _send_chunk(self, upload_url: str, offset: int, chunk: bytes) -> int:
        digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode("ascii")
        headers = {
            **TUS_HEADERS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
            "Upload-Checksum": f"sha256 {digest}",
        }
        response = self._check(self._http.patch(upload_url, content=chunk, headers=headers))
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

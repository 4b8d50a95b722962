"""A small Python client for the vidq API; the `vidq` command's client verbs use it.

from vidq.client import VidqClient
with VidqClient("http://127.0.0.1:8000", api_key) as client:
    job = client.convert("holiday.mov", preset="mp4-h264-720p")
    job = client.wait(job["id"])
    client.download(job["id"], "holiday.mp4")
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

FINISHED = ("completed", "failed", "cancelled")
CHUNK_BYTES = 1024 * 1024


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

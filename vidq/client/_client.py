"""VidqClient: one service, one API key, every call of the API the `vidq` command makes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from vidq.client._errors import VidqAPIError
from vidq.client._sse import parse_events
from vidq.client._tus import ResumableUploads

FINISHED = ("completed", "failed", "cancelled")
CHUNK_BYTES = 256 * 1024
# The events stream sends at least a comment every 15 s: three missed ones mean it is gone.
EVENTS_READ_TIMEOUT_SECONDS = 45.0
EVENTS_RECONNECTS = 5

Job = dict[str, Any]
# Called with the bytes sent or received so far (and, for downloads, the total if known).
UploadProgress = Callable[[int], None]
DownloadProgress = Callable[[int, int | None], None]


class JobDeleted(Exception):
    """The job followed was deleted meanwhile (its events stream said so)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job {job_id} was deleted while it was followed.")
        self.job_id = job_id


class _NoEventStream(Exception):
    """The service has no events stream for jobs (an older vidq): poll instead."""


def _file_chunks(path: Path, on_progress: UploadProgress | None) -> Iterator[bytes]:
    sent = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk
            sent += len(chunk)
            if on_progress is not None:
                on_progress(sent)


def _query_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def output_name(job: Job) -> str:
    """The name a completed job's output is saved under: the service's, without any folder."""
    name = str((job.get("result") or {}).get("filename") or "")
    name = "".join(ch for ch in name if ch.isprintable()).replace("\\", "/").rsplit("/", 1)[-1]
    return name if name not in ("", ".", "..") else f"{job['id']}.out"


def free_path(directory: Path, name: str) -> Path:
    """`directory/name`, or `name-1.ext`, `name-2.ext` … if that is taken: never overwrites."""
    candidate = directory / name
    stem, suffix = Path(name).stem, Path(name).suffix
    number = 0
    while candidate.exists():
        number += 1
        candidate = directory / f"{stem}-{number}{suffix}"
    return candidate


class VidqClient(ResumableUploads):
    """Talks to one vidq service with one API key. Transport problems raise httpx's own
    errors (`httpx.ConnectError`, …); answers with a problem raise VidqAPIError. Inputs
    fetched by the service and resumable uploads: `ResumableUploads`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )
        # How the last `follow` learnt of changes: "events" (the stream) or "polling".
        self.followed_by: str | None = None

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
        if not isinstance(body, dict):
            body = {}
        retry_after = response.headers.get("retry-after", "")
        raise VidqAPIError(
            response.status_code,
            str(body.get("code", "error")),
            str(body.get("detail", response.reason_phrase or response.text[:200])),
            body,
            retry_after_seconds=float(retry_after) if retry_after.isdigit() else None,
        )

    def convert(
        self,
        path: str | Path,
        *,
        idempotency_key: str | None = None,
        on_progress: UploadProgress | None = None,
        **options: Any,
    ) -> Job:
        """Upload a file (streamed, never read whole) with options; returns the queued Job.
        `on_progress(bytes_sent)` is called as the upload goes."""
        path = Path(path)
        params = {k: _query_value(v) for k, v in options.items() if v is not None}
        params["filename"] = path.name
        headers = {
            "Content-Type": "application/octet-stream",
            # Known in advance, so that a file over the limit is refused before it is sent.
            "Content-Length": str(path.stat().st_size),
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = self._http.post(
            "/convert", params=params, content=_file_chunks(path, on_progress), headers=headers
        )
        job: Job = self._check(response).json()
        return job

    def job(self, job_id: str, *, wait: float | None = None) -> Job:
        """The Job now, or (with `wait`) once it ends or `wait` seconds pass."""
        params = {"wait": wait} if wait else None
        job: Job = self._check(self._http.get(f"/job/{job_id}", params=params)).json()
        return job

    def wait(self, job_id: str, *, timeout: float = 3600.0) -> Job:
        """Block until the job ends (or `timeout` passes); returns the Job."""
        deadline = time.monotonic() + timeout
        job = self.job(job_id)
        while job["status"] not in FINISHED and (left := deadline - time.monotonic()) > 0:
            job = self.job(job_id, wait=min(60.0, max(1.0, left)))
        return job

    def follow(self, job_id: str) -> Iterator[Job]:
        """The Job as it is now, then again at each change, until it has ended; JobDeleted
        if it is deleted meanwhile.

        Read from the events stream (`GET /job/{id}/events`); from a service without one
        (it answers 404), by asking `GET /job/{id}?wait=1` once a second instead."""
        try:
            self.followed_by = "events"
            yield from self._follow_events(job_id)
        except _NoEventStream:
            self.followed_by = "polling"
            yield from self._follow_polling(job_id)

    def _follow_events(self, job_id: str) -> Iterator[Job]:
        timeout = httpx.Timeout(self._http.timeout.connect, read=EVENTS_READ_TIMEOUT_SECONDS)
        headers = {"Accept": "text/event-stream"}
        failures, delay = 0, 1.0
        while True:
            seen = False
            try:
                with self._http.stream(
                    "GET", f"/job/{job_id}/events", headers=headers, timeout=timeout
                ) as response:
                    content_type = response.headers.get("content-type", "")
                    if response.status_code == 404 or (
                        response.status_code < 400 and "text/event-stream" not in content_type
                    ):
                        raise _NoEventStream
                    if response.status_code >= 400:
                        response.read()
                        self._check(response)
                    for event in parse_events(response.iter_lines()):
                        if event.retry_ms is not None:
                            delay = event.retry_ms / 1000
                        if event.event == "deleted":
                            raise JobDeleted(job_id)
                        if event.event not in ("job", "message"):
                            continue
                        job: Job = json.loads(event.data)
                        seen = True
                        yield job
                        if job.get("status") in FINISHED:
                            return
            except (httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError):
                if failures >= EVENTS_RECONNECTS:
                    raise
            # The stream ended before the job did (a restart, a proxy): connect again; its
            # first event is the job as it is then.
            failures = 0 if seen else failures + 1
            if failures > EVENTS_RECONNECTS:
                raise _NoEventStream
            time.sleep(delay)

    def _follow_polling(self, job_id: str) -> Iterator[Job]:
        job = self.job(job_id)
        yield job
        while job["status"] not in FINISHED:
            try:
                job = self.job(job_id, wait=1)
            except VidqAPIError as exc:
                # Many jobs followed at once may pass the key's request rate: slow down.
                if exc.status != 429:
                    raise
                time.sleep(exc.retry_after_seconds or 1.0)
                continue
            yield job

    def jobs_page(
        self, *, status: list[str] | None = None, limit: int = 20, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page of your jobs, newest first: `{"jobs": [...], "next_cursor": ...}`."""
        params: list[tuple[str, str | int | float | bool | None]] = [("limit", limit)]
        params += [("status", s) for s in status or []]
        if cursor:
            params.append(("cursor", cursor))
        page: dict[str, Any] = self._check(self._http.get("/jobs", params=params)).json()
        return page

    def jobs(self, *, status: list[str] | None = None, limit: int = 20) -> list[Job]:
        """Your jobs, newest first (one page)."""
        jobs: list[Job] = self.jobs_page(status=status, limit=limit)["jobs"]
        return jobs

    def cancel(self, job_id: str) -> Job:
        """Stop a queued or running job, keeping its record."""
        job: Job = self._check(self._http.post(f"/job/{job_id}/cancel")).json()
        return job

    def delete(self, job_id: str) -> None:
        """Remove a job and its files (stopping it first if it runs)."""
        self._check(self._http.delete(f"/job/{job_id}"))

    def download(
        self,
        job_id: str,
        destination: str | Path = ".",
        *,
        on_progress: DownloadProgress | None = None,
    ) -> Path:
        """Save a completed job's output; returns where. A `destination` that is a folder
        gets the output under its own name, made unique (`name-1.mp4`) rather than
        overwriting anything; a file path is written over. The file appears only once
        complete (it is written as `<name>.part` first)."""
        destination = Path(destination)
        if destination.is_dir():
            destination = free_path(destination, output_name(self.job(job_id)))
        partial = destination.with_name(destination.name + ".part")
        try:
            # On a bucket the service may redirect to it (httpx drops the key for another host).
            with self._http.stream(
                "GET", f"/job/{job_id}/output", follow_redirects=True
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                length = response.headers.get("content-length")
                total = int(length) if length and length.isdigit() else None
                received = 0
                with partial.open("wb") as handle:
                    for chunk in response.iter_bytes(CHUNK_BYTES):
                        handle.write(chunk)
                        received += len(chunk)
                        if on_progress is not None:
                            on_progress(received, total)
            partial.replace(destination)
        finally:
            partial.unlink(missing_ok=True)
        return destination

    def presets(self) -> list[dict[str, Any]]:
        """The presets the service offers."""
        presets: list[dict[str, Any]] = self._check(self._http.get("/presets")).json()["presets"]
        return presets

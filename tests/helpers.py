"""Helpers the test modules share: talking to the API, checking problems, waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

from vidq.config import Settings
from vidq.jobs.blobs import DATABASE_MARK
from vidq.media.ffmpeg import run_ffmpeg

PROBLEM = "application/problem+json"
ENDED = ("completed", "failed", "cancelled")


def media_settings(data_dir: Path) -> Settings:
    """Settings for probing and converting in the test process: room for any test clip, a
    probe timeout a busy machine meets, two ffmpeg threads."""
    return Settings(
        data_dir=data_dir,
        probe_timeout_seconds=20,
        ffmpeg_threads=2,
        max_input_width=8192,
        max_input_height=8192,
        max_input_duration_seconds=86400,
        ffmpeg_memory_bytes=4096 * 1024**2,
    )


async def run_to_end(argv: list[str], settings: Settings, *, cwd: Path | None = None) -> None:
    """Run an ffmpeg argv as the worker runs it (its limits, a minute at most); it must succeed."""
    result = await run_ffmpeg(
        argv,
        settings=settings,
        on_progress=lambda _seconds: None,
        stop=asyncio.Event(),
        timeout_seconds=60,
        stall_seconds=30,
        max_output_bytes=100 * 1024**2,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr_tail


def api_client(url: str, key: str, **kwargs: Any) -> httpx.Client:
    """A client for the API at `url` that sends `key` as its bearer token."""
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.Client(base_url=url, headers=headers, timeout=30, **kwargs)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is an RFC 9457 problem with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"].endswith(code) and body["title"] and body["detail"]
    return body


def post_convert(client: httpx.Client, path: Path, **fields: str) -> httpx.Response:
    """POST /convert with `path` as the multipart `file` part and `fields` as options.

    The answer as it comes, success or problem; `submit_job` when only a queued job will do.
    """
    with path.open("rb") as handle:
        return client.post(
            "/convert", files={"file": (path.name, handle, "video/mp4")}, data=fields
        )


def submit_job(client: httpx.Client, path: Path, **fields: str) -> dict[str, Any]:
    """The Job that POST /convert queued (it must answer 202 Accepted)."""
    response = post_convert(client, path, **fields)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_done(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The Job once it has ended (completed, failed or cancelled), polled with ?wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/job/{job_id}", params={"wait": 5}).json()
        if job["status"] in ENDED:
            return job
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def wait_completed(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The Job once it has ended, which must be as completed (else its error fails the test)."""
    job = wait_done(client, job_id, timeout)
    assert job["status"] == "completed", job["error"]
    return job


def convert_completed(
    client: httpx.Client, path: Path, *, timeout: float = 60, **fields: str
) -> dict[str, Any]:
    """The Job of `path` sent to POST /convert with `fields` and waited for; it must complete."""
    return wait_completed(client, submit_job(client, path, **fields)["id"], timeout)


def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = "the condition"
) -> None:
    """Block until `predicate()` is true; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def ffmpeg_children() -> list[psutil.Process]:
    """ffmpeg processes started by this test process (the server runs in it)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "ffmpeg" in child.name() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def stored_blobs(root: Path) -> list[Path]:
    """The files in a storage directory, but for the mark naming its database."""
    return [p for p in root.rglob("*") if p.is_file() and p != root / DATABASE_MARK]

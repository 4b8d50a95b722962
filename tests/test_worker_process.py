"""`vidq worker` as any orchestrator runs it: SIGTERM drains and exits 0, batch runners stop
after N jobs or when idle, and /metrics on a port of its own tells an autoscaler the queue.

Real processes: an API to submit through and workers started through the CLI, sharing one
SQLite database and one storage directory.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from vidq.datadir import WORKER_LOCK_FILE

from .conftest import free_port
from .helpers import api_client, submit_job, wait_for
from .processes import VidqProcess, ffmpeg_alive
from .test_acceptance import _job_row, _new_key, get_job, wait_finished

pytestmark = pytest.mark.slow


@pytest.fixture
def shared(tmp_path: Path) -> dict[str, str]:
    return {
        "VIDQ_DATABASE_URL": f"sqlite:///{tmp_path / 'fleet.db'}",
        "VIDQ_STORAGE_URL": (tmp_path / "files").as_uri(),
        "VIDQ_WORKERS": "1",
        "VIDQ_HEARTBEAT_SECONDS": "0.2",
        "VIDQ_POLL_SECONDS": "0.2",
        "VIDQ_LOG_LEVEL": "info",
    }


@pytest.fixture
def api(tmp_path: Path, shared: dict[str, str]) -> Iterator[tuple[VidqProcess, str]]:
    """An API process to submit through, and a key for it."""
    process = VidqProcess("api", tmp_path / "api", shared, port=free_port())
    try:
        key = asyncio.run(_new_key(shared["VIDQ_DATABASE_URL"]))
        process.start()
        yield process, key
    finally:
        process.stop()


def worker(
    tmp_path: Path, shared: dict[str, str], name: str, *args: str, **env: str
) -> VidqProcess:
    return VidqProcess("worker", tmp_path / name, {**shared, **env}, args=list(args))


def scrape(port: int) -> dict[str, float]:
    """The samples of a Prometheus text page, by name and labels."""
    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def running_with_ffmpeg(url: str, key: str, job_id: str, process: VidqProcess) -> bool:
    return get_job(url, key, job_id)["status"] == "running" and bool(process.ffmpeg_pids())


def test_sigterm_past_the_grace_hands_the_job_back_and_exits_0_and_metrics_tell_the_queue(
    tmp_path: Path, shared: dict[str, str], api: tuple[VidqProcess, str], long_clip: Path
) -> None:
    url, key = api[0].url, api[1]
    metrics_port = free_port()
    busy = worker(
        tmp_path,
        shared,
        "w1",
        "--metrics-port",
        str(metrics_port),
        VIDQ_SHUTDOWN_GRACE_SECONDS="1",
    )
    try:
        with api_client(url, key) as client:
            long = submit_job(client, long_clip, preset="webm-vp9")
            waiting = [submit_job(client, long_clip, preset="mp4-h264") for _ in range(2)]
        busy.start(wait=False)
        wait_for(lambda: running_with_ffmpeg(url, key, long["id"], busy), 60, "the long job")
        # What an autoscaler reads: two jobs wait, the oldest for a while; one slot, busy.
        samples = scrape(metrics_port)
        assert samples["vidq_queue_depth"] == 2
        assert samples["vidq_queue_oldest_age_seconds"] > 0
        assert samples["vidq_jobs{status=queued}"] == 2
        assert samples["vidq_jobs{status=running}"] == 1
        assert samples["vidq_worker_slots"] == 1
        assert samples["vidq_conversions_running"] == 1

        ffmpeg = busy.ffmpeg_pids()
        asked = time.monotonic()
        busy.signal(signal.SIGTERM)
        assert busy.wait_exit(60) == 0, busy.log()
        took = time.monotonic() - asked
        assert took < 30, f"the worker took {took:.1f} s to stop with a 1 s grace"
        assert not ffmpeg_alive(ffmpeg)
        row = asyncio.run(_job_row(shared["VIDQ_DATABASE_URL"], long["id"]))
        assert (row.status, row.attempts) == ("queued", 0), "handed back, the attempt not counted"
        assert all(get_job(url, key, job["id"])["status"] == "queued" for job in waiting)
    finally:
        busy.stop()


def test_sigterm_lets_the_running_job_finish_within_the_grace_and_exits_0(
    tmp_path: Path, shared: dict[str, str], api: tuple[VidqProcess, str], long_clip: Path
) -> None:
    url, key = api[0].url, api[1]
    draining = worker(tmp_path, shared, "w1", VIDQ_SHUTDOWN_GRACE_SECONDS="120")
    try:
        with api_client(url, key) as client:
            job = submit_job(client, long_clip, preset="mp4-h264", end="8")
            queued = submit_job(client, long_clip, preset="mp4-h264", end="1")
        draining.start(wait=False)
        wait_for(lambda: running_with_ffmpeg(url, key, job["id"], draining), 60, "the job")
        draining.signal(signal.SIGTERM)
        assert draining.wait_exit(150) == 0, draining.log()
        done = get_job(url, key, job["id"])
        assert done["status"] == "completed", done
        row = asyncio.run(_job_row(shared["VIDQ_DATABASE_URL"], job["id"]))
        assert row.attempts == 1
        # Stopping means claiming nothing new.
        assert get_job(url, key, queued["id"])["status"] == "queued"
    finally:
        draining.stop()


def test_a_batch_worker_stops_after_max_jobs_or_when_idle(
    tmp_path: Path, shared: dict[str, str], api: tuple[VidqProcess, str], clip: Path
) -> None:
    url, key = api[0].url, api[1]
    with api_client(url, key) as client:
        jobs: list[dict[str, Any]] = [submit_job(client, clip, preset="mp4-h264") for _ in range(3)]
    # Two slots sharing a budget of two jobs: two run, the third waits; the process exits 0.
    batch = worker(tmp_path, shared, "w1", "--max-jobs", "2", VIDQ_WORKERS="2")
    try:
        batch.start(wait=False)
        assert batch.wait_exit(120) == 0, batch.log()
        assert "ran 2 job(s) (VIDQ_MAX_JOBS)" in batch.log()
    finally:
        batch.stop()
    statuses = sorted(get_job(url, key, job["id"])["status"] for job in jobs)
    assert statuses == ["completed", "completed", "queued"]

    # Idle for 2 s after its last job: it exits 0 (scale to zero).
    idle = worker(tmp_path, shared, "w2", VIDQ_IDLE_EXIT_SECONDS="2")
    try:
        idle.start(wait=False)
        wait_for(lambda: (idle.data_dir / WORKER_LOCK_FILE).exists(), 60, "the worker to start")
        for job in jobs:
            assert wait_finished(url, key, job["id"])["status"] == "completed"
        assert idle.wait_exit(60) == 0, idle.log()
        assert "no job for 2 s (VIDQ_IDLE_EXIT_SECONDS)" in idle.log()
    finally:
        idle.stop()

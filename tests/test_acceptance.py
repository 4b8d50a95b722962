"""Acceptance: the real `vidq` program started through its CLI, used over HTTP as a user would."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from vidq.db.migrate import migrated_database
from vidq.db.models import Job, table_of
from vidq.jobs import reads
from vidq.jobs.accounts import create_owner

from .conftest import free_port
from .helpers import api_client, submit_job, wait_for
from .processes import VIDQ, VidqProcess, ffmpeg_alive

pytestmark = pytest.mark.slow


def get_job(url: str, key: str, job_id: str, wait: float | None = None) -> dict[str, Any]:
    params = {"wait": wait} if wait else {}
    response = httpx.get(
        f"{url}/job/{job_id}", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=70
    )
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_finished(url: str, key: str, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """The job once it has ended (it may be queued again and run anew before that)."""
    deadline = time.monotonic() + timeout
    job = get_job(url, key, job_id, wait=60)
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job {job_id} did not end in {timeout} s"
        job = get_job(url, key, job_id, wait=60)
    return job


@pytest.fixture
def serve_env(db_url: str) -> dict[str, str]:
    """Settings for the processes: quick heartbeats, on each database backend."""
    return {
        "VIDQ_DATABASE_URL": db_url,
        "VIDQ_WORKERS": "1",
        "VIDQ_HEARTBEAT_SECONDS": "0.2",
        "VIDQ_POLL_SECONDS": "0.2",
        "VIDQ_LEASE_SECONDS": "5",
        "VIDQ_LOG_LEVEL": "warning",
    }


@pytest.fixture
def serve(tmp_path: Path, serve_env: dict[str, str]) -> Iterator[VidqProcess]:
    process = VidqProcess("serve", tmp_path / "data", serve_env, port=free_port())
    try:
        yield process
    finally:
        process.stop()


async def _job_row(database_url: str, job_id: str) -> Job:
    async with migrated_database(database_url) as database:
        return await reads.get(database, job_id)


def test_first_start_makes_a_key_and_keys_create_prints_one(serve: VidqProcess, clip: Path) -> None:
    serve.env["VIDQ_LOG_LEVEL"] = "info"  # with the access log
    serve.start()
    key_file = serve.data_dir / "api-key"
    key = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key in serve.log() and len(key) >= 43
    with api_client(serve.url, key) as client:
        job = submit_job(client, clip)
    done = get_job(serve.url, key, job["id"], wait=30)
    assert done["status"] == "completed"
    # A signed link is a bearer secret: it works, and the access log does not keep it.
    link = httpx.URL(done["result"]["download_url"])
    assert httpx.get(str(link)).status_code == 200
    signature = link.params["signature"]
    wait_for(lambda: f"/job/{job['id']}/output?" in serve.log(), 5, "the access log line")
    assert signature not in serve.log()
    assert "signature=[redacted]" in serve.log()

    created = subprocess.run(
        [*VIDQ, "keys", "create", "bob"],
        env={**os.environ, **serve.env, "VIDQ_DATA_DIR": str(serve.data_dir)},
        capture_output=True,
        text=True,
        check=True,
    )
    bob = created.stdout.strip().splitlines()[-1]
    account = httpx.get(serve.url + "/account", headers={"Authorization": f"Bearer {bob}"})
    assert account.status_code == 200 and account.json()["name"] == "bob"
    theirs = httpx.get(f"{serve.url}/job/{job['id']}", headers={"Authorization": f"Bearer {bob}"})
    assert theirs.status_code == 404
    # A restart keeps the first key and makes no other.
    serve.stop()
    serve.start()
    assert key_file.read_text().strip() == key
    assert get_job(serve.url, key, job["id"])["status"] == "completed"


def test_invalid_setting_fails_loudly(tmp_path: Path) -> None:
    done = subprocess.run(
        [*VIDQ, "serve"],
        env={**os.environ, "VIDQ_DATA_DIR": str(tmp_path), "VIDQ_WORKERS": "many"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "VIDQ_WORKERS" in done.stderr


def test_kill_9_mid_conversion_loses_nothing(
    serve: VidqProcess, long_clip: Path, clip: Path
) -> None:
    serve.start()
    key = (serve.data_dir / "api-key").read_text().strip()
    with api_client(serve.url, key) as client:
        running = submit_job(client, long_clip, preset="webm-vp9")
        waiting = submit_job(client, clip)
    wait_for(
        lambda: (
            get_job(serve.url, key, running["id"])["status"] == "running" and serve.ffmpeg_pids()
        ),
        20,
        "the job to run",
    )
    ffmpeg_pids = serve.ffmpeg_pids()
    serve.signal(signal.SIGKILL)
    serve.wait_exit(10)
    # ffmpeg does not outlive the process that started it.
    wait_for(lambda: not ffmpeg_alive(ffmpeg_pids), 5, "ffmpeg to die with its parent")
    serve.start()
    for job in (running, waiting):
        done = wait_finished(serve.url, key, job["id"])
        assert done["status"] == "completed", done
        download = httpx.get(done["result"]["download_url"])
        assert download.status_code == 200 and len(download.content) == done["result"]["size_bytes"]


def test_sigterm_requeues_and_exits_in_time(
    tmp_path: Path, serve_env: dict[str, str], long_clip: Path
) -> None:
    env = {**serve_env, "VIDQ_SHUTDOWN_GRACE_SECONDS": "1"}
    serve = VidqProcess("serve", tmp_path / "data", env, port=free_port())
    try:
        serve.start()
        key = (serve.data_dir / "api-key").read_text().strip()
        with api_client(serve.url, key) as client:
            job = submit_job(client, long_clip, preset="webm-vp9")
        wait_for(
            lambda: (
                get_job(serve.url, key, job["id"])["status"] == "running" and serve.ffmpeg_pids()
            ),
            20,
            "the job to run",
        )
        ffmpeg_pids = serve.ffmpeg_pids()
        asked = time.monotonic()
        serve.signal(signal.SIGTERM)
        serve.wait_exit(1 + 5 + 1)
        assert time.monotonic() - asked < 1 + 5
        assert not ffmpeg_alive(ffmpeg_pids)
        # Back in the queue without counting the interrupted attempt.
        state = asyncio.run(_job_row(env["VIDQ_DATABASE_URL"], job["id"]))
        assert (state.status, state.attempts) == ("queued", 0)
        serve.start()
        done = wait_finished(serve.url, key, job["id"])
        assert done["status"] == "completed", done
    finally:
        serve.stop()


def test_paused_worker_loses_its_lease_and_its_writes(
    tmp_path: Path, serve_env: dict[str, str], long_clip: Path
) -> None:
    """A worker frozen past its lease: another takes the job; the stale one changes nothing."""
    database_url = serve_env["VIDQ_DATABASE_URL"]
    shared = {
        **serve_env,
        "VIDQ_STORAGE_URL": (tmp_path / "bucket").as_uri(),
        "VIDQ_LEASE_SECONDS": "2",
    }
    api = VidqProcess("api", tmp_path / "api", shared, port=free_port())
    first = VidqProcess("worker", tmp_path / "w1", shared)
    second = VidqProcess("worker", tmp_path / "w2", shared)
    try:
        key = asyncio.run(_new_key(database_url))
        api.start()
        first.start(wait=False)
        with api_client(api.url, key) as client:
            job = submit_job(client, long_clip, preset="webm-vp9", end="6")
        wait_for(lambda: bool(first.ffmpeg_pids()), 20, "the first worker to start ffmpeg")
        stale_ffmpeg = first.ffmpeg_pids()
        asyncio.run(_freeze_between_writes(database_url, job["id"], first))
        second.start(wait=False)
        wait_for(lambda: bool(second.ffmpeg_pids()), 30, "the second worker to take the job over")
        taken = get_job(api.url, key, job["id"])
        assert taken["status"] == "running"
        first.signal(signal.SIGCONT)
        # The stale worker learns at its next heartbeat and stops its ffmpeg.
        wait_for(lambda: not ffmpeg_alive(stale_ffmpeg), 10, "the stale worker to stop ffmpeg")
        done = wait_finished(api.url, key, job["id"])
        assert done["status"] == "completed", done
        row = asyncio.run(_job_row(database_url, job["id"]))
        assert row.attempts == 2
        assert row.worker_id is not None and "/" in row.worker_id
        assert httpx.get(done["result"]["download_url"]).status_code == 200
    finally:
        for process in (first, second, api):
            process.stop()


async def _freeze_between_writes(database_url: str, job_id: str, process: VidqProcess) -> None:
    """SIGSTOP a worker while this test holds the job row's write lock, so the frozen
    worker cannot be holding it: on SQLite a frozen lock holder stalls every process (README)."""
    jobs = table_of(Job)
    async with migrated_database(database_url) as database, database.write() as conn:
        await conn.execute(
            update(jobs).where(jobs.c.id == job_id).values(updated_at=jobs.c.updated_at)
        )
        process.signal(signal.SIGSTOP)


async def _new_key(database_url: str) -> str:
    async with migrated_database(database_url) as database:
        _, key = await create_owner(database, "fleet")
    return key

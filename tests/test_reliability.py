"""Promises kept under stress: idempotency, retention, full disks, time limits, SQLite under load."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vidq.worker.janitor import Janitor

from .conftest import LiveServer, free_port, make_settings, running_server
from .helpers import (
    api_client,
    assert_problem,
    ffmpeg_children,
    post_convert,
    stored_blobs,
    submit_job,
    wait_done,
    wait_for,
)
from .processes import VidqProcess


def stored_files(live: LiveServer) -> list[Path]:
    return stored_blobs(live.settings.data_dir / "files")


def keyed(client: httpx.Client, content: Path | bytes, key: str, **fields: str) -> httpx.Response:
    """POST /convert with an Idempotency-Key."""
    data = content.read_bytes() if isinstance(content, Path) else content
    return client.post(
        "/convert",
        files={"file": ("a.mp4", data)},
        data=fields,
        headers={"Idempotency-Key": key},
    )


def test_idempotency_key(live_server: LiveServer, clip: Path, long_clip: Path) -> None:
    with live_server.client() as client:
        first = keyed(client, clip, "order-42", preset="mp4-h264")
        assert first.status_code == 202
        again = keyed(client, clip, "order-42", preset="mp4-h264")
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        other_options = keyed(client, clip, "order-42", preset="gif")
        assert_problem(other_options, 422, "idempotency_key_reused")
        other_bytes = keyed(client, long_clip, "order-42", preset="mp4-h264")
        assert_problem(other_bytes, 422, "idempotency_key_reused")
        # Another owner's key space is its own.
        with live_server.client(live_server.new_key("other")) as theirs:
            mine_elsewhere = keyed(theirs, clip, "order-42", preset="mp4-h264")
        assert mine_elsewhere.status_code == 202
        assert mine_elsewhere.json()["id"] != first.json()["id"]
        # A refused request does not use up its key.
        assert_problem(keyed(client, b"not video", "k2"), 422, "unsupported_media")
        retried = keyed(client, clip, "k2")
        assert retried.status_code == 202
        accepted = {first.json()["id"], mine_elsewhere.json()["id"], retried.json()["id"]}
        assert_problem(keyed(client, b"x", "k" * 256), 422, "invalid_option")
    # Only the accepted uploads are kept: every stored file belongs to an accepted job.
    owners = {p.name.split(".")[0] for p in stored_files(live_server)}
    assert owners and owners <= accepted


async def test_idempotency_key_while_first_is_uploading(
    live_server: LiveServer, clip: Path
) -> None:
    data = clip.read_bytes()
    release = asyncio.Event()

    async def slow_body() -> Any:
        yield data[:1000]
        await release.wait()
        yield data[1000:]

    headers = {
        "Authorization": f"Bearer {live_server.key}",
        "Idempotency-Key": "slow",
        "Content-Type": "video/mp4",
    }
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        first = asyncio.create_task(client.post("/convert", content=slow_body(), headers=headers))
        await asyncio.sleep(0.5)
        second = await client.post("/convert", content=data, headers=headers)
        assert_problem(second, 409, "conflict")
        release.set()
        assert (await first).status_code == 202
        third = await client.post("/convert", content=data, headers=headers)
        assert third.status_code == 200 and third.json()["id"] == (await first).json()["id"]


def test_retention_expires_outputs_and_sweeps_orphans(tmp_path: Path, clip: Path) -> None:
    settings = make_settings(
        tmp_path, retention_hours=2 / 3600, janitor_seconds=0.5, orphan_grace_seconds=1
    )
    with running_server(settings) as live, live.client() as client:
        job = submit_job(client, clip)
        done = wait_done(client, job["id"])
        files = live.settings.data_dir / "files"
        assert not list((files / "inputs").glob("*")), "the input goes when its job ends"
        output = files / "outputs"
        assert len(list(output.glob("*"))) == 1
        # Files no job owns: an input from a crash mid-upload, a partial upload.
        orphan = files / "inputs" / "00000000-dead-beef-0000-000000000000"
        orphan.write_bytes(b"left behind")
        partial = files / ".partial" / "crashed.part"
        partial.parent.mkdir(exist_ok=True)
        partial.write_bytes(b"half")
        deadline = time.monotonic() + 10
        while (
            list(output.glob("*")) or orphan.exists() or partial.exists()
        ) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not list(output.glob("*")) and not orphan.exists() and not partial.exists()
        assert_problem(httpx.get(done["result"]["download_url"]), 410, "gone")
        # The record stays until deleted.
        assert client.get(f"/job/{job['id']}").json()["status"] == "completed"
        assert client.delete(f"/job/{job['id']}").status_code == 204


async def test_janitor_keeps_what_jobs_own(tmp_path: Path) -> None:
    from vidq.jobs.runtime import Runtime

    runtime = await Runtime.open(make_settings(tmp_path, orphan_grace_seconds=1))
    try:
        busy = runtime.settings.tmp_dir / "running-job"
        stale = runtime.settings.tmp_dir / "dead-job"
        for path in (busy, stale):
            path.mkdir(parents=True)
            (path / "output.mp4").write_bytes(b"x")
            os.utime(path, (time.time() - 60, time.time() - 60))
        janitor = Janitor(runtime, lambda: [busy])
        counts = await janitor.sweep()
        assert counts["scratch"] == 1 and busy.exists() and not stale.exists()
    finally:
        await runtime.close()


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of `size` mounted at `path` (needs root, as CI has)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a small filesystem for this test: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_while_uploading_is_507_and_leaves_nothing(tmp_path: Path, clip: Path) -> None:
    with small_filesystem(tmp_path / "small", "1m") as small:
        settings = make_settings(tmp_path, storage_url=(small / "files").as_uri())
        with running_server(settings) as live, live.client() as client:
            big = os.urandom(3 * 1024 * 1024)
            refused = client.post("/convert", content=big, headers={"Content-Type": "video/mp4"})
            assert_problem(refused, 507, "storage_full")
            assert stored_blobs(small / "files") == []
            # Once there is room again, uploads work.
            assert post_convert(client, clip).status_code == 202


def test_full_disk_while_converting_fails_storage_full(tmp_path: Path, long_clip: Path) -> None:
    with small_filesystem(tmp_path / "small", "1m") as small:
        settings = make_settings(
            tmp_path,
            data_dir=small / "data",
            database_url=f"sqlite:///{tmp_path / 'vidq.db'}",
        )
        with running_server(settings) as live, live.client() as client:
            # Lossless H.264 of 20 s of test pattern is far larger than the room left.
            job = submit_job(client, long_clip, crf="0")
            done = wait_done(client, job["id"])
            assert done["status"] == "failed", done
            assert done["error"]["code"] == "storage_full", done["error"]
            assert not list(live.settings.tmp_dir.iterdir()), "the partial output is removed"


def test_lossless_h264(live_server: LiveServer, clip: Path) -> None:
    with live_server.client() as client:
        done = wait_done(client, submit_job(client, clip, crf="0")["id"])
        assert done["status"] == "completed", done
        assert done["result"]["video"]["codec"] == "h264"


def test_conversion_past_its_time_limit_fails_with_timeout(tmp_path: Path, long_clip: Path) -> None:
    settings = make_settings(tmp_path, job_timeout_min_seconds=0.5, job_timeout_factor=0.01)
    with running_server(settings) as live, live.client() as client:
        job = submit_job(client, long_clip, preset="webm-vp9")
        done = wait_done(client, job["id"])
        assert done["status"] == "failed" and done["error"]["code"] == "timeout", done


def test_wait_answers_as_soon_as_the_job_ends(live_server: LiveServer, clip: Path) -> None:
    with live_server.client() as client:
        job = submit_job(client, clip)
        asked = time.monotonic()
        done = client.get(f"/job/{job['id']}", params={"wait": 30}).json()
        assert done["status"] == "completed"
        assert time.monotonic() - asked < 25, "?wait returned when the job ended, not at the limit"


def test_sqlite_under_concurrent_uploads_and_polls(tmp_path: Path, clip: Path) -> None:
    """20 uploads and 200 polls at once: no 'database is locked', no 5xx."""
    # One key sends all 220 at once, beyond its default burst: the rate limit is not tested here.
    settings = make_settings(tmp_path, rate_limit_per_second=0)
    with running_server(settings) as live:
        responses = asyncio.run(_uploads_and_polls(live, clip.read_bytes()))
    statuses = [r.status_code for r in responses]
    assert statuses.count(202) == 20 and statuses.count(200) == 200, sorted(set(statuses))
    assert not any("locked" in r.text for r in responses)


async def _uploads_and_polls(live: LiveServer, data: bytes) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {live.key}"}
    limits = httpx.Limits(max_connections=250)
    async with httpx.AsyncClient(
        base_url=live.url, headers=headers, timeout=120, limits=limits
    ) as client:
        seed = (
            await client.post("/convert", content=data, headers={"Content-Type": "video/mp4"})
        ).json()

        async def upload() -> httpx.Response:
            return await client.post(
                "/convert",
                files={"file": ("c.mp4", data, "video/mp4")},
                data={"preset": "mp4-h264"},
            )

        async def poll() -> httpx.Response:
            return await client.get(f"/job/{seed['id']}")

        return await asyncio.gather(*([upload() for _ in range(20)] + [poll() for _ in range(200)]))


def test_cancel_and_delete_stop_ffmpeg_without_waiting_for_a_heartbeat(
    tmp_path: Path, long_clip: Path
) -> None:
    # Heartbeats far apart: ffmpeg must stop because the cancel told its worker, not
    # because the worker's next heartbeat found the job gone.
    settings = make_settings(tmp_path, heartbeat_seconds=60, lease_seconds=300)
    with running_server(settings) as live, live.client() as client:
        for action in ("cancel", "delete"):
            # Upscaled to 1080p, VP9 takes half a minute here: far longer than the wait below.
            job = submit_job(client, long_clip, preset="webm-vp9", width="1920", upscale="true")
            wait_for(
                lambda job=job: (
                    client.get(f"/job/{job['id']}").json()["status"] == "running"
                    and bool(ffmpeg_children())
                ),
                timeout=20,
                what="the job to start",
            )
            if action == "cancel":
                assert client.post(f"/job/{job['id']}/cancel").status_code == 200
            else:
                assert client.delete(f"/job/{job['id']}").status_code == 204
            wait_for(lambda: not ffmpeg_children(), timeout=5, what=f"ffmpeg to stop ({action})")


def test_a_dead_worker_is_started_again_and_readiness_says_when_none_runs(
    live_server: LiveServer, clip: Path
) -> None:
    pool = live_server.app.state.service.pool
    loop = pool.tasks[0].get_loop()
    with live_server.client() as client:
        # A worker task that ends (here: cancelled from outside) is started again.
        dead = pool.tasks[0]
        loop.call_soon_threadsafe(dead.cancel)
        wait_for(lambda: pool.tasks[0] is not dead and pool.alive() == 1, 10, "a new worker")
        assert client.get("/readyz").status_code == 200
        job = submit_job(client, clip)
        assert wait_done(client, job["id"])["status"] == "completed"

        # With no worker alive and none coming back, the process is not ready.
        loop.call_soon_threadsafe(pool._supervisor.cancel)
        loop.call_soon_threadsafe(pool.tasks[0].cancel)
        wait_for(lambda: pool.alive() == 0, 10, "the worker to end")
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json() == {
            "status": "unavailable",
            "detail": "no conversion worker is running",
        }


def test_a_disk_that_fills_as_jobs_end_does_not_stop_the_workers(
    tmp_path: Path, clip: Path, long_clip: Path
) -> None:
    """The database, the files and the scratch space share one small disk, which is filled
    while a job runs: whatever fails (ffmpeg's writes, the database's), the worker lives
    on, and once there is room again every job ends and new ones complete."""
    with small_filesystem(tmp_path / "small", "24m") as small:
        env = {
            "VIDQ_WORKERS": "1",
            "VIDQ_HEARTBEAT_SECONDS": "0.2",
            "VIDQ_POLL_SECONDS": "0.2",
            "VIDQ_LEASE_SECONDS": "3",
            "VIDQ_LOG_LEVEL": "info",
        }
        server = VidqProcess("serve", small / "data", env, port=free_port())
        server.log_path = tmp_path / "serve.log"  # not on the full disk
        server.start()
        try:
            key = (small / "data" / "api-key").read_text().strip()
            with api_client(server.url, key) as client:
                first = submit_job(client, long_clip, crf="0")  # lossless: a large output
                wait_for(
                    lambda: client.get(f"/job/{first['id']}").json()["status"] == "running",
                    20,
                    "the first job to start",
                )
                filler = small / "filler"
                subprocess.run(
                    ["dd", "if=/dev/zero", f"of={filler}", "bs=64k"],
                    capture_output=True,
                    check=False,
                )  # until the disk is full
                time.sleep(3)  # ffmpeg and the database both meet the full disk
                filler.unlink()
                assert client.get("/readyz").status_code == 200
                ended = wait_done(client, first["id"], timeout=60)
                assert ended["status"] in ("completed", "failed"), ended
                second = submit_job(client, clip)
                assert wait_done(client, second["id"], timeout=60)["status"] == "completed"
                assert client.get("/readyz").status_code == 200
        finally:
            server.stop()

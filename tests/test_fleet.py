"""Chaos: a fleet keeps every promise while its workers, database, bucket and API falter.

A PostgreSQL server the test starts itself (so that it can restart it), moto's S3 server
behind a proxy that can fail on demand (tests/faulty_proxy.py), two `vidq api` and three
`vidq worker` processes, all real. While jobs are submitted through both APIs, a random
worker is killed with SIGKILL every few seconds and replaced, PostgreSQL restarts once,
the bucket answers 500s and resets connections for a few seconds, and one API process is
stopped with SIGTERM and replaced. Then every accepted job must have completed exactly
once, with an output that decodes, every webhook must have arrived (one `webhook-id` per
event), and nothing may be left behind: no ffmpeg or probe process, no blob in the bucket
that no job owns.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from standardwebhooks.webhooks import Webhook

from vidq.jobs import blobs

from .conftest import make_s3
from .faulty_proxy import FaultyProxy
from .fleet import (
    COMPLETED,
    Fleet,
    JobSpec,
    Submitter,
    decoded_frames,
    duplicate_runs,
    ends_in_logs,
    leftover_children,
    package_frames,
    still_running,
)
from .media_clips import make_clip
from .notify_receivers import WebhookReceiver
from .pg_cluster import PgCluster, missing_reason
from .test_acceptance import _new_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BUCKET, PREFIX = "vidq-fleet", "files"
JOBS = 36
# Preset and clip of each job in turn; every other job asks for a webhook.
MIX = [
    ("mp4-h264", "short"),
    ("webm-vp9", "long"),
    ("mp3", "short"),
    ("mp4-h264", "long"),
    ("gif", "short"),
    ("hls", "long"),
]
CHAOS_SECONDS = 60  # at least; until every job is submitted and each fault has happened
KILL_EVERY = (3.0, 6.0)  # seconds between two kills, drawn at random
PG_RESTART_AT, BUCKET_FAULT_AT, API_SWAP_AT = 12.0, 24.0, 36.0
PG_DOWN_SECONDS = 3.0
BUCKET_FAULT_SECONDS = 5.0
DEADLINE_SECONDS = 240.0  # for the jobs to finish once the chaos is over
# Exit codes of a process stopped with SIGTERM: a worker exits 0; an API (uvicorn) ends by
# the signal itself once it has drained its requests.
DRAINED = (0, -signal.SIGTERM)


@pytest.fixture
def pg() -> Iterator[PgCluster]:
    if reason := missing_reason():
        pytest.skip(reason)
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def long_clip_8s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight seconds of 320x180: long enough to be caught running by a kill."""
    return make_clip(
        tmp_path_factory.mktemp("fleet-clips") / "eight.mp4", seconds=8, size=(320, 180)
    )


def fleet_env(database_url: str, endpoint: str) -> dict[str, str]:
    return {
        "VIDQ_DATABASE_URL": database_url,
        "VIDQ_STORAGE_URL": f"s3://{BUCKET}/{PREFIX}",
        "VIDQ_S3_ENDPOINT_URL": endpoint,
        "VIDQ_WORKERS": "1",
        "VIDQ_FFMPEG_THREADS": "1",
        "VIDQ_HEARTBEAT_SECONDS": "0.5",
        "VIDQ_POLL_SECONDS": "0.5",
        "VIDQ_LEASE_SECONDS": "10",
        # Kills are the test's doing, not the job's: no job may run out of attempts for them.
        "VIDQ_MAX_ATTEMPTS": "50",
        "VIDQ_SHUTDOWN_GRACE_SECONDS": "5",
        "VIDQ_WEBHOOK_ALLOW_PRIVATE": "1",
        "VIDQ_WEBHOOK_TIMEOUT_SECONDS": "5",
        "VIDQ_NOTIFY_RETRY_SECONDS": "0,1,2,4,8,8,8,8,8,8",
        "VIDQ_ORPHAN_GRACE_SECONDS": "30",
        "VIDQ_JANITOR_SECONDS": "3",
        "VIDQ_RATE_LIMIT_PER_SECOND": "0",
        "VIDQ_LOG_LEVEL": "warning",
    }


def job_rows(database_url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT id, status, attempts, error_code, error_message, output_key, result FROM jobs"
        )
        columns = [c.name for c in cursor.description or []]
        return {row[0]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}


def wait_until_finished(database_url: str, timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = job_rows(database_url)
        except psycopg.OperationalError:
            rows = {}
        unfinished = [r for r in rows.values() if r["status"] in ("queued", "running")]
        if rows and not unfinished:
            return rows
        assert time.monotonic() < deadline, f"{len(unfinished)} job(s) still unfinished"
        time.sleep(1)


def expected_keys(rows: dict[str, dict[str, Any]]) -> set[str]:
    """Every blob the completed jobs own, and the store's database mark."""
    keys = {f"{PREFIX}/{blobs.DATABASE_MARK}"}
    for job_id, row in rows.items():
        keys.add(f"{PREFIX}/{row['output_key']}")
        for f in row["result"]["files"]:
            key = blobs.file_key(job_id, f["path"], role=f["role"], main_key=row["output_key"])
            keys.add(f"{PREFIX}/{key}")
    return keys


def bucket_keys(client: Any) -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_the_fleet_keeps_its_promises_through_chaos(
    tmp_path: Path, s3: str, clip: Path, long_clip_8s: Path, pg: PgCluster
) -> None:
    seed = int(os.environ.get("VIDQ_TEST_CHAOS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    bucket = make_s3(s3, BUCKET, PREFIX)
    host, port = s3.removeprefix("http://").rsplit(":", 1)
    clips = {"short": clip, "long": long_clip_8s}
    plan = [
        JobSpec(clips[MIX[n % len(MIX)][1]], MIX[n % len(MIX)][0], webhook=n % 2 == 0)
        for n in range(JOBS)
    ]
    with WebhookReceiver() as receiver, FaultyProxy(host, int(port)) as proxy:
        env = fleet_env(pg.url, proxy.url)
        fleet = Fleet(tmp_path, env, {**env, "VIDQ_LOG_LEVEL": "info"})
        try:
            key = asyncio.run(_new_key(pg.url))
            for _ in range(2):
                fleet.start_api()
            for _ in range(3):
                fleet.start_worker()
            pace = 0.8 * CHAOS_SECONDS / JOBS
            submitter = Submitter(fleet, key, receiver.url, plan, pace_seconds=pace)
            submitter.start()

            # The chaos, on a timeline; one thread, so that no process starts while the
            # database is down (vidq migrates at start; an orchestrator would retry it).
            started = time.monotonic()
            next_kill = started + rng.uniform(*KILL_EVERY)
            kills = kills_mid_job = 0
            killed_ffmpeg: list[int] = []
            pg_restarts = bucket_faults = api_swaps = 0
            bucket_until: float | None = None
            unexpected: list[str] = []
            while True:
                now = time.monotonic()
                for gone in fleet.exited_unexpectedly():
                    unexpected.append(f"{gone.log_path.name}:\n{gone.log()[-3000:]}")
                    (fleet.start_api if gone.command == "api" else fleet.start_worker)()
                if now >= next_kill:
                    _, ffmpeg = fleet.kill_worker(rng)
                    kills += 1
                    kills_mid_job += bool(ffmpeg)
                    killed_ffmpeg += ffmpeg
                    fleet.start_worker()
                    next_kill = time.monotonic() + rng.uniform(*KILL_EVERY)
                if not pg_restarts and now - started >= PG_RESTART_AT:
                    pg.stop()
                    time.sleep(PG_DOWN_SECONDS)
                    pg.start()
                    pg_restarts += 1
                if not bucket_faults and now - started >= BUCKET_FAULT_AT:
                    proxy.set_mode("flaky")
                    bucket_until = now + BUCKET_FAULT_SECONDS
                    bucket_faults += 1
                if bucket_until is not None and now >= bucket_until:
                    proxy.set_mode("healthy")
                    bucket_until = None
                if not api_swaps and now - started >= API_SWAP_AT:
                    old = fleet.apis[0]
                    fleet.start_api()
                    assert fleet.retire_api(old) in DRAINED, old.log()
                    api_swaps += 1
                chaos_over = now - started >= CHAOS_SECONDS and api_swaps and bucket_until is None
                if chaos_over and submitter.done():
                    break
                assert now - started < 300, "the jobs were not all accepted in 5 minutes"
                time.sleep(0.25)
            chaos_seconds = time.monotonic() - started
            assert submitter.failure is None, submitter.failure
            assert unexpected == [], "a process of the fleet died unbidden"
            assert submitter.internal_errors == [], "a fault was answered 500, not 503"

            # Every accepted job completed, once; none appeared that was not accepted.
            rows = wait_until_finished(pg.url, DEADLINE_SECONDS)
            accepted = submitter.accepted
            assert len(accepted) == JOBS
            assert set(rows) == set(accepted), "a job exists that no answer accepted"
            lost = {
                job_id: (row["status"], row["error_code"], row["error_message"])
                for job_id, row in rows.items()
                if row["status"] != "completed"
            }
            assert lost == {}, "every accepted job completes"
            duplicates = duplicate_runs(fleet.worker_logs())
            assert duplicates == [], "no job ran to completion twice"
            with psycopg.connect(pg.url) as conn:
                events = conn.execute(
                    "SELECT job_id, count(*) FROM notifications GROUP BY job_id"
                ).fetchall()
            assert all(count == 1 for _, count in events), "one end, one event, per job"
            assert len(events) == sum(spec.webhook for spec in plan)
            logged = ends_in_logs(fleet.worker_logs(), COMPLETED)
            reruns = sum(row["attempts"] - 1 for row in rows.values())

            # Each output decodes; the bucket holds exactly what the jobs own.
            api_url = fleet.api_urls()[0]
            auth = {"Authorization": f"Bearer {key}"}
            with httpx.Client(headers=auth, timeout=60, follow_redirects=True) as client:
                secret = client.get(f"{api_url}/account").json()["webhook_secret"]
                for job_id, spec in accepted.items():
                    job = client.get(f"{api_url}/job/{job_id}").json()
                    assert job["status"] == "completed", job
                    output = client.get(job["result"]["download_url"])
                    assert output.status_code == 200, output.text
                    assert len(output.content) == job["result"]["size_bytes"]
                    if spec.preset == "hls":
                        frames = package_frames(output.content, job["result"]["files"])
                    else:
                        frames = decoded_frames(output.content)
                    assert frames > 0, f"job {job_id} ({spec.preset}) does not decode"
            expected = expected_keys(rows)
            deadline = time.monotonic() + 90  # the janitors sweep what a kill left behind
            while (found := bucket_keys(bucket.client)) != expected:
                assert time.monotonic() < deadline, (
                    f"orphaned: {sorted(found - expected)}; missing: {sorted(expected - found)}"
                )
                time.sleep(1)
            uploads = bucket.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
            assert uploads == [], "no multipart upload is left open"
            swept = sum(log.count("janitor removed") for log in fleet.logs())

            # Every webhook arrived, signed, with one webhook-id per event.
            webhook_jobs = {job_id for job_id, spec in accepted.items() if spec.webhook}
            deliveries: dict[str, list[Any]] = {}
            deadline = time.monotonic() + 120
            while True:
                deliveries = {}
                # A request cut off by a worker's kill arrives short: not a delivery.
                whole = [
                    r
                    for r in list(receiver.received)
                    if len(r.body) == int(r.headers.get("content-length", -1))
                ]
                cut = len(receiver.received) - len(whole)
                for request in whole:
                    body = json.loads(request.body)
                    deliveries.setdefault(body["data"]["id"], []).append(request)
                if webhook_jobs <= deliveries.keys():
                    break
                assert time.monotonic() < deadline, (
                    f"webhooks missing for {sorted(webhook_jobs - deliveries.keys())}"
                )
                time.sleep(1)
            assert deliveries.keys() == webhook_jobs
            for job_id, requests in deliveries.items():
                assert len({r.headers["webhook-id"] for r in requests}) == 1, job_id
                for request in requests:
                    document = Webhook(secret).verify(request.body, request.headers)
                    assert document["type"] == "job.completed"
            redelivered = sum(len(r) - 1 for r in deliveries.values())
        finally:
            codes = fleet.stop_all()
        assert all(code in DRAINED for code in codes.values()), codes
        assert all(code == 0 for name, code in codes.items() if "worker" in name), codes

    time.sleep(1)
    assert still_running(killed_ffmpeg) == [], "ffmpeg outlived its killed worker"
    assert leftover_children(tmp_path) == [], "no ffmpeg or probe process is left"
    print(
        f"\nfleet chaos (seed {seed}): {JOBS} jobs, {len(rows)} completed, "
        f"{kills} workers killed ({kills_mid_job} mid-conversion), "
        f"{pg_restarts} database restart, {bucket_faults} bucket outage "
        f"({proxy.faults_served} connections failed), {api_swaps} API replaced, "
        f"{submitter.retries} submissions retried, {reruns} conversions re-run, "
        f"{len(logged)} completions logged, {redelivered} webhooks redelivered "
        f"({cut} cut off), "
        f"{swept} janitor sweeps, chaos {chaos_seconds:.0f} s; duplicates 0, lost 0"
    )

"""Fleet throughput: jobs a minute through 1, 2, 3 worker processes, and the claim rate.

    .venv/bin/python bench/fleet.py [--jobs 60] [--workers 1,2,3] [--queued 10000]

Everything runs on this machine: one PostgreSQL database made for the run (on the server
named by --database-url or VIDQ_BENCH_POSTGRES_URL, default the tests' local server) and
dropped at the end, moto's S3 server on a free loopback port as the bucket, one `vidq api`
to submit through and N `vidq worker` processes, each with VIDQ_WORKERS=1 and one ffmpeg
thread.

1. **jobs/minute**: for each N, a fresh database and bucket prefix; `--jobs` short jobs (a
   2 s 320x180 clip to `mp4-h264`, `transcode=always`) submitted by four client threads while no worker runs,
   then N workers started; timed from the first job's start to the last one's end, as the
   job rows record them (the API's upload and probe of each input are not in it).
2. **claim rate**: `--queued` queued rows inserted at once, then `claim_next` (the real
   `FOR UPDATE SKIP LOCKED` query) run by 1, 4 and 16 concurrent tasks on one process's
   engine until 2,000 jobs are claimed: claims a second, and the CPU each costs this
   process. Measured twice, alternately: as vidq claims (one statement on an autocommit
   connection of the claim pool: one round trip) and, as the baseline, the same statement
   in a transaction on the shared, pre-pinged pool (ping, BEGIN, UPDATE, COMMIT: four).
   `--claims-only` skips the jobs a minute.

Prints one line per measurement and the load average, which matters on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
from benchlib import free_port, make_clip
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vidq.clock import utcnow  # noqa: E402
from vidq.db.database import Database  # noqa: E402
from vidq.db.fair_claim import FIFO, Scheduling  # noqa: E402
from vidq.db.migrate import migrated_database  # noqa: E402
from vidq.db.models import Job, table_of  # noqa: E402
from vidq.jobs import queue  # noqa: E402
from vidq.jobs.accounts import create_owner  # noqa: E402

VIDQ = [sys.executable, "-m", "vidq.cli.main"]
BUCKET = "vidq-bench"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
CLAIMS = 2000


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of `server_url`; dropped afterwards."""
    base = server_url.rsplit("/", 1)[0]
    name = f"vidq_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def moto_bucket() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line a request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


class Process:
    """A `vidq api|worker` subprocess, logging to a file."""

    def __init__(self, command: str, workdir: Path, env: dict[str, str], port: int | None = None):
        self.port = port
        self.data_dir = workdir / f"{command}-{uuid.uuid4().hex[:6]}"
        env = {**env, "VIDQ_DATA_DIR": str(self.data_dir)}
        if port is not None:
            env["VIDQ_PORT"] = str(port)
        self.log = self.data_dir.with_suffix(".log")
        with self.log.open("wb") as log:
            self.popen = subprocess.Popen(
                [*VIDQ, command], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir
            )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(self.log.read_text(errors="replace")[-3000:])
            if self.port is None:
                if (self.data_dir / "worker.lock").exists():
                    return
            else:
                try:
                    url = f"http://127.0.0.1:{self.port}/readyz"
                    if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"not ready in {timeout} s: {self.log}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


async def new_key(database_url: str) -> str:
    async with migrated_database(database_url) as db:
        _, key = await create_owner(db, "bench")
    return key


def count_finished(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed'),"
            " count(*) FILTER (WHERE status IN ('failed', 'cancelled')) FROM jobs"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def jobs_a_minute(
    server_url: str, endpoint: str, clip: Path, workdir: Path, workers: int, jobs: int
) -> float:
    """Jobs a minute through `workers` worker processes."""
    with fresh_database(server_url) as database_url:
        key = asyncio.run(new_key(database_url))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("VIDQ_")},
            "PYTHONPATH": str(ROOT),  # the processes run this checkout's vidq
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "VIDQ_DATABASE_URL": database_url,
            "VIDQ_STORAGE_URL": f"s3://{BUCKET}/run-{workers}",
            "VIDQ_S3_ENDPOINT_URL": endpoint,
            "VIDQ_WORKERS": "1",
            "VIDQ_FFMPEG_THREADS": "1",
            "VIDQ_RATE_LIMIT_PER_SECOND": "0",
            "VIDQ_MAX_UNFINISHED_JOBS": str(jobs + 10),
            "VIDQ_LOG_LEVEL": "warning",
        }
        api = Process("api", workdir, env, port=free_port())
        fleet: list[Process] = []
        try:
            api.wait_ready()
            url = f"http://127.0.0.1:{api.port}/convert"
            headers = {"Authorization": f"Bearer {key}"}

            def submit(_: int) -> None:
                with clip.open("rb") as body:
                    answer = httpx.post(
                        url,
                        headers=headers,
                        files={"file": (clip.name, body, "video/mp4")},
                        # An H.264 + AAC clip: encoded, as when measured, not remuxed.
                        data={"preset": "mp4-h264", "transcode": "always"},
                        timeout=120,
                        trust_env=False,
                    )
                answer.raise_for_status()

            # The whole batch waits in the queue before any worker starts: the figure is the
            # workers' own, not the API's upload and probe of each input.
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(submit, range(jobs)))
            fleet = [Process("worker", workdir, env) for _ in range(workers)]
            while sum(count_finished(database_url)) < jobs:
                time.sleep(0.2)
            failed = count_finished(database_url)[1]
            if failed:
                raise RuntimeError(f"{failed} job(s) failed")
            return jobs / worked_seconds(database_url) * 60
        finally:
            for process in [*fleet, api]:
                process.stop()


def worked_seconds(database_url: str) -> float:
    """From the first job's start to the last one's end, as the job rows record them."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM jobs"
        ).fetchone()
    assert row is not None
    return float(row[0])


async def claim_rate(server_url: str, queued: int, concurrency: int) -> tuple[float, float]:
    """claim_next calls a second by `concurrency` tasks, with `queued` rows in the queue, and
    the CPU milliseconds this process spent on each (what limits it on a busy machine)."""
    with fresh_database(server_url) as database_url:
        async with migrated_database(database_url) as db:
            owner, _ = await create_owner(db, "bench")
            jobs = table_of(Job)
            now = utcnow()
            rows = [
                {
                    "id": str(uuid.uuid4()),
                    "owner_id": owner.id,
                    "status": "queued",
                    "created_at": now + timedelta(microseconds=n),
                    "updated_at": now,
                    "input_filename": "clip.mp4",
                    "input_content_type": "video/mp4",
                    "input_size_bytes": 1,
                    "input_sha256": "0" * 64,
                    "input_info": {},
                    "options": {},
                    "metadata": {},
                    "attempts": 0,
                    "expired": False,
                }
                for n in range(queued)
            ]
            async with db.write() as conn:
                for start in range(0, queued, 1000):
                    await conn.execute(insert(jobs), rows[start : start + 1000])
            claimed = 0

            async def claimer(n: int) -> None:
                nonlocal claimed
                while claimed < CLAIMS:
                    claim = await queue.claim_next(db, worker_id=f"bench/{n}", lease_seconds=60)
                    assert claim is not None
                    claimed += 1

            started, cpu = time.monotonic(), time.process_time()
            await asyncio.gather(*(claimer(n) for n in range(concurrency)))
            cpu_ms = (time.process_time() - cpu) * 1000 / claimed
            return claimed / (time.monotonic() - started), cpu_ms


async def claims_a_second(
    db: Database, concurrency: int, *, claims: int, scheduling: Scheduling = FIFO
) -> float:
    """claim_next calls a second by `concurrency` tasks, until `claims` are made or none is
    left to claim (the claimed jobs stay running)."""
    claimed = 0

    async def claimer(n: int) -> None:
        nonlocal claimed
        while claimed < claims:
            claim = await queue.claim_next(
                db, worker_id=f"bench/{n}", lease_seconds=60, scheduling=scheduling
            )
            if claim is None:
                return
            claimed += 1

    started = time.monotonic()
    await asyncio.gather(*(claimer(n) for n in range(concurrency)))
    return claimed / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("VIDQ_BENCH_POSTGRES_URL", DEFAULT_DATABASE),
        help="a PostgreSQL server (a database is made on it for each run, and dropped)",
    )
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--claims-only", action="store_true")
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the start")
    if not args.claims_only:
        workers_a_minute(args)
    one_statement = Database.one_statement
    for concurrency in (1, 4, 16):
        for way in ("one statement", "transaction (baseline)"):
            # The baseline: the claim in a write transaction, as before the claim pool.
            Database.one_statement = one_statement if way == "one statement" else Database.write  # type: ignore[method-assign]
            rate, cpu_ms = asyncio.run(claim_rate(args.database_url, args.queued, concurrency))
            print(
                f"claim_next, {way}: {rate:.0f} claims/s ({cpu_ms:.2f} ms of CPU each) with "
                f"{args.queued} queued, {concurrency} concurrent claimer(s), "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    Database.one_statement = one_statement  # type: ignore[method-assign]


def workers_a_minute(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="vidq-bench-fleet-") as tmp:
        workdir = Path(tmp)
        clip = make_clip(workdir / "clip.mp4", seconds=2, size="320x180", rate=25)
        with moto_bucket() as endpoint:
            for workers in (int(n) for n in args.workers.split(",")):
                rate = jobs_a_minute(args.database_url, endpoint, clip, workdir, workers, args.jobs)
                print(
                    f"workers {workers}: {rate:.1f} jobs/minute ({args.jobs} jobs), "
                    f"load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

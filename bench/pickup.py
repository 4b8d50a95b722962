"""How long from a submitted job to its ffmpeg starting, with an idle worker?

Starts a real `vidq serve` (temporary data directory, one worker, no rate limit, log level
warning), on SQLite by default or on a fresh PostgreSQL database (`--postgres URL`),
whose ffmpeg (VIDQ_FFMPEG) is a small bash wrapper that writes the time it was started
(`$EPOCHREALTIME`, no process spawned for it) and its directory, then `exec`s the real
ffmpeg. The wrapper's own start (bash, a few milliseconds) is counted in the figures.

Then submits `--jobs` jobs one at a time (a 1 s 160x120 clip as a raw body, preset
mp4-h264), each once the worker is idle again (the job before has completed and a short
pause has passed), and measures for each:

- **pickup**: the client starts sending `POST /convert` -> the first ffmpeg of that job
  started: submission (a 13 kB upload, the input's probe, the insert) and pickup (the
  worker woken, the claim, the ffmpeg start), as the issue's "submit -> ffmpeg started";
- **after 202**: the `202 Accepted` received -> ffmpeg started (negative when ffmpeg
  started first: the worker runs in the API's process);
- **queued**: the job row's `created_at` (set just before its insert, after the upload
  and the probe) -> ffmpeg started, split at `started_at` (the claim) into the claim
  (insert, commit, worker woken, claim written) and the start (claim -> ffmpeg running).

It prints p50/p95/max of each, and as its last line `p50_ms X` (queued: the pickup
proper, from the job in the queue to its ffmpeg; the submission before it is upload and
probe, the floor the issue names).
Goal: p50 < 50 ms, p95 < 150 ms.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import stat
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchlib import ffmpeg_exe, make_clip, vidq_server
from poll import postgres_database

WRAPPER = """#!/bin/bash
echo "$EPOCHREALTIME $PWD" >> {log}
exec {ffmpeg} "$@"
"""
IDLE_SECONDS = 0.3


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def job_times(database_url: str | None, data_dir: Path, job_id: str) -> tuple[float, float]:
    """The job row's created_at (its insert) and started_at (its claim), as Unix times."""
    query = "SELECT created_at, started_at FROM jobs WHERE id = "
    if database_url is None:
        with sqlite3.connect(data_dir / "vidq.db") as conn:
            row = conn.execute(query + "?", (job_id,)).fetchone()
        moments = [datetime.fromisoformat(value) for value in row]
    else:
        import psycopg

        with psycopg.connect(database_url) as conn:
            row = conn.execute(query + "%s", (job_id,)).fetchone()
            assert row is not None
            moments = list(row)
    created, started = (m.replace(tzinfo=UTC) if m.tzinfo is None else m for m in moments)
    return created.timestamp(), started.timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--postgres", metavar="URL", help="a fresh database on this server")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    with (
        tempfile.TemporaryDirectory(prefix="vidq-pickup-") as tmp,
        postgres_database(args.postgres) as database_url,
    ):
        workdir = Path(tmp)
        clip = make_clip(workdir / "clip.mp4", seconds=1, size="160x120")
        starts = workdir / "ffmpeg-starts.log"
        wrapper = workdir / "ffmpeg"
        wrapper.write_text(WRAPPER.format(log=starts, ffmpeg=ffmpeg_exe()))
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        settings = {
            "VIDQ_WORKERS": "1",
            "VIDQ_RATE_LIMIT_PER_SECOND": "0",
            "VIDQ_FFMPEG": str(wrapper),
        }
        if database_url is not None:
            settings["VIDQ_DATABASE_URL"] = database_url
        pickup, after_202, queued, claimed, spawned = [], [], [], [], []
        body = clip.read_bytes()
        with vidq_server(workdir, settings) as server, server.client() as client:
            for n in range(args.jobs + 1):  # the first is a warm-up, not counted
                time.sleep(IDLE_SECONDS)
                sent = time.time()
                answer = client.post(
                    "/convert",
                    params={"filename": clip.name, "preset": "mp4-h264"},
                    headers={"Content-Type": "video/mp4"},
                    content=body,
                )
                accepted = time.time()
                answer.raise_for_status()
                job_id = answer.json()["id"]
                job = client.get(f"/job/{job_id}", params={"wait": 60}).json()
                if job["status"] != "completed":
                    raise RuntimeError(f"job {job_id} ended {job['status']}: {job['error']}")
                started = min(
                    float(line.split()[0])
                    for line in starts.read_text().splitlines()
                    if job_id in line
                )
                if n == 0:
                    continue
                pickup.append(1000 * (started - sent))
                after_202.append(1000 * (started - accepted))
                created, claim = job_times(database_url, server.data_dir, job_id)
                queued.append(1000 * (started - created))
                claimed.append(1000 * (claim - created))
                spawned.append(1000 * (started - claim))
    print(f"load average at end: {os.getloadavg()}")
    print(f"database: {'postgresql' if args.postgres else 'sqlite'}, jobs: {len(pickup)}")
    for name, values in (
        ("pickup (POST sent -> ffmpeg)", pickup),
        ("after 202 (202 read -> ffmpeg)", after_202),
        ("queued (created_at -> ffmpeg)", queued),
        ("  of which: claim (created_at -> started_at)", claimed),
        ("  and start (started_at -> ffmpeg)", spawned),
    ):
        print(
            f"{name}: p50 {percentile(values, 0.5):.1f} ms, p95 {percentile(values, 0.95):.1f} ms,"
            f" max {max(values):.1f} ms, min {min(values):.1f} ms"
        )
    print(f"p50_ms {percentile(queued, 0.5):.0f}")


if __name__ == "__main__":
    main()

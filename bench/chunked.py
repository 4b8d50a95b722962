"""Chunked encoding: one long job through 2 worker processes chunked vs 1 unchunked.

    .venv/bin/python bench/chunked.py [--seconds 180] [--chunk-seconds 10] [--workers 2]

A 3-minute 1280x720 clip (testsrc2 and a tone, made by the bench) is converted to
`mp4-h264` at CRF 23 (a re-encode, not a remux) by `vidq worker` processes sharing one
SQLite database and one local store, each standing for one machine of a fleet:
VIDQ_WORKERS=1 and VIDQ_FFMPEG_THREADS=1.

1. **unchunked**: 1 worker process, VIDQ_CHUNK_SECONDS unset (the ordinary single run).
2. **chunked**: `--workers` worker processes, VIDQ_CHUNK_SECONDS=`--chunk-seconds`.

Each time is the job's own, from its `started_at` to its `finished_at` (the upload and
the input's probe by the API are not in it). Prints both, the speedup, the model's
estimate, and the load average before and after, which matter on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchlib import ffmpeg_exe, free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vidq.db.migrate import migrated_database  # noqa: E402
from vidq.jobs.accounts import create_owner  # noqa: E402
from vidq.jobs.reads import get  # noqa: E402

VIDQ = [sys.executable, "-m", "vidq.cli.main"]


def make_clip(path: Path, seconds: int) -> Path:
    subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p",
            "-c:a", "aac", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def start(command: str, data_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VIDQ_")}
    full.update(env, VIDQ_DATA_DIR=str(data_dir), VIDQ_LOG_LEVEL="warning")
    log = (data_dir.parent / f"{data_dir.name}.log").open("ab")
    return subprocess.Popen([*VIDQ, command], env=full, stdout=log, stderr=subprocess.STDOUT)


async def _key(database_url: str) -> str:
    async with migrated_database(database_url) as database:
        return (await create_owner(database, "bench"))[1]


async def _times(database_url: str, job_id: str) -> tuple[str, float]:
    async with migrated_database(database_url) as database:
        job = await get(database, job_id)
    assert job.started_at is not None and job.finished_at is not None
    return job.status, (job.finished_at - job.started_at).total_seconds()


def run(clip: Path, workdir: Path, workers: int, chunk_seconds: float | None) -> float:
    """The job's own time through `workers` worker processes."""
    workdir.mkdir(parents=True)
    database_url = f"sqlite:///{workdir / 'vidq.db'}"
    env = {
        "VIDQ_DATABASE_URL": database_url,
        "VIDQ_STORAGE_URL": (workdir / "files").as_uri(),
        "VIDQ_WORKERS": "1",
        "VIDQ_FFMPEG_THREADS": "1",
        "VIDQ_POLL_SECONDS": "0.5",
        "VIDQ_JOB_TIMEOUT_FACTOR": "50",
    }
    if chunk_seconds:
        env["VIDQ_CHUNK_SECONDS"] = str(chunk_seconds)
    key = asyncio.run(_key(database_url))
    port = free_port()
    processes = [
        start("api", workdir / "api", {**env, "VIDQ_WORKERS": "0", "VIDQ_PORT": str(port)})
    ]
    try:
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=600, trust_env=False) as client:
            for _ in range(300):
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            with clip.open("rb") as f:
                answer = client.post(
                    "/convert",
                    files={"file": (clip.name, f, "video/mp4")},
                    data={"preset": "mp4-h264", "crf": "23"},
                )
            answer.raise_for_status()
            job_id = answer.json()["id"]
            processes += [start("worker", workdir / f"worker-{n}", env) for n in range(workers)]
            while client.get(f"/job/{job_id}", params={"wait": 30}).json()["status"] in (
                "queued",
                "running",
            ):
                pass
        status, seconds = asyncio.run(_times(database_url, job_id))
        if status != "completed":
            raise RuntimeError(f"the job ended {status}")
        return seconds
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="vidq-bench-chunked-") as tmp:
        clip = make_clip(Path(tmp) / "long.mp4", args.seconds)
        whole = run(clip, Path(tmp) / "whole", 1, None)
        print(f"1 worker, unchunked: {whole:.1f} s", flush=True)
        chunked = run(clip, Path(tmp) / "chunked", args.workers, args.chunk_seconds)
        print(f"{args.workers} workers, chunked by {args.chunk_seconds:g} s: {chunked:.1f} s")
    print(f"speedup: {whole / chunked:.2f}x (goal >= 1.8x for 2 workers)")
    print(f"overhead besides the parts' encode: {args.workers * chunked / whole - 1:.1%}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""How fast a cancel stops ffmpeg: request sent -> ffmpeg gone, p50/p95 over 20 cancels.

Starts a real `vidq serve` (one worker, default heartbeat), and 20 times: uploads a clip
that takes far longer to convert than the measurement, waits until its ffmpeg runs,
then sends `DELETE /job/{id}` (even rounds) or `POST /job/{id}/cancel` (odd rounds) and
polls every millisecond until that ffmpeg process is gone. It does this on an idle
machine and again with every core kept busy by other processes, and as a baseline,
the same poll after SIGKILL of an ffmpeg this script started itself.

    python bench/cancel.py [--rounds 20]

The last line is `p95_ms X` (request sent -> ffmpeg gone, loaded machine).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Server, ffmpeg_exe, make_clip, median, vidq_server


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ffmpeg_children(pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "ffmpeg" in child.name() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(process: psutil.Process, timeout: float = 30.0) -> float:
    """Seconds until `process` is gone (polled every millisecond)."""
    deadline = time.monotonic() + timeout
    while not gone(process):
        if time.monotonic() > deadline:
            raise RuntimeError(f"ffmpeg {process.pid} still runs after {timeout:g} s")
        time.sleep(0.001)
    return time.monotonic()


def one_cancel(server: Server, clip: Path, use_delete: bool) -> tuple[float, float]:
    """(request sent -> answered, request sent -> ffmpeg gone), in seconds."""
    with server.client() as client, clip.open("rb") as body:
        job = client.post(
            "/convert",
            params={"preset": "webm-vp9", "width": "1920", "upscale": "true"},
            content=body,
            headers={"Content-Type": "video/mp4"},
        ).json()
        deadline = time.monotonic() + 60
        while not (running := ffmpeg_children(server.pid)):
            if time.monotonic() > deadline:
                raise RuntimeError("the job's ffmpeg never started")
            time.sleep(0.005)
        sent = time.monotonic()
        if use_delete:
            answer = client.delete(f"/job/{job['id']}")
        else:
            answer = client.post(f"/job/{job['id']}/cancel")
        answered = time.monotonic()
        assert answer.status_code in (200, 204), answer.text
        ended = max(wait_gone(p) for p in running)
    return answered - sent, ended - sent


def direct_kill(clip: Path) -> float:
    """SIGKILL -> gone for an ffmpeg this script runs itself: the floor of the measurement."""
    process = subprocess.Popen(
        [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(clip), "-f", "null", "-"],
    )
    time.sleep(0.3)
    watched = psutil.Process(process.pid)
    sent = time.monotonic()
    os.kill(process.pid, signal.SIGKILL)
    ended = wait_gone(watched)
    process.wait()
    return ended - sent


@contextmanager
def busy_machine() -> Iterator[None]:
    """One spinning process per core, stopped at the end."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def report(label: str, answered: list[float], ended: list[float]) -> float:
    p95 = percentile(ended, 0.95) * 1000
    print(
        f"{label}: answered p50 {median(answered) * 1000:.1f} ms; ffmpeg gone p50"
        f" {median(ended) * 1000:.1f} ms, p95 {p95:.1f} ms, max {max(ended) * 1000:.1f} ms"
        f" (n={len(ended)})",
        flush=True,
    )
    return p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vidq-bench-cancel-") as tmp:
        workdir = Path(tmp)
        clip = make_clip(workdir / "clip.mp4", seconds=20, size="640x360")
        floor = [direct_kill(clip) for _ in range(5)]
        print(f"baseline (SIGKILL of our own ffmpeg -> gone): p50 {median(floor) * 1000:.1f} ms")
        with vidq_server(workdir, {"VIDQ_WORKERS": "1"}) as server:
            p95 = 0.0
            for label, load in (("idle", None), ("loaded", busy_machine)):
                answered: list[float] = []
                ended: list[float] = []
                with load() if load else _nothing():
                    for n in range(args.rounds):
                        a, e = one_cancel(server, clip, use_delete=n % 2 == 0)
                        answered.append(a)
                        ended.append(e)
                p95 = report(label, answered, ended)
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"p95_ms {p95:.1f}")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    main()

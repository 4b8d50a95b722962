"""Helpers shared by the benchmarks: a real `vidq serve` in a subprocess, a test clip.

Everything stays on this machine: the server listens on 127.0.0.1 on a free port, with
its data directory inside the benchmark's temporary directory, and is always stopped
(SIGTERM, then SIGKILL) when the `with` block ends, whatever happened inside it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
VIDQ = Path(sys.executable).with_name("vidq")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
CHUNK_BYTES = 1024 * 1024
FINISHED = ("completed", "failed", "cancelled")


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_clip(
    path: Path,
    *,
    seconds: int = 10,
    size: str = "1280x720",
    rate: int = 30,
    faststart: bool = False,
) -> Path:
    """A test clip: testsrc2 video and a sine tone, H.264 + AAC in MP4."""
    argv = [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={rate}:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-shortest",
    ]
    if faststart:
        argv += ["-movflags", "+faststart"]
    subprocess.run([*argv, str(path)], check=True, timeout=300)
    return path


@dataclass
class Server:
    """A running `vidq serve`."""

    process: subprocess.Popen[bytes]
    base_url: str
    api_key: str
    data_dir: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, timeout: float = 120.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            trust_env=False,  # never through a proxy: traffic stays on 127.0.0.1
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def vidq_server(workdir: Path, settings: Mapping[str, str]) -> Iterator[Server]:
    """Start `vidq serve` (data dir under `workdir`) with extra VIDQ_* settings; stop it after."""
    data_dir = workdir / "vidq-data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDQ_")}
    env.update(
        {
            "VIDQ_HOST": "127.0.0.1",
            "VIDQ_PORT": str(port),
            "VIDQ_DATA_DIR": str(data_dir),
            "VIDQ_LOG_LEVEL": "warning",
            "VIDQ_SHUTDOWN_GRACE_SECONDS": "2",
            **settings,
        }
    )
    env.pop("http_proxy", None)
    env.pop("HTTP_PROXY", None)
    log_path = workdir / "vidq-serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(VIDQ), "serve"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    server = Server(process, f"http://127.0.0.1:{port}", "", data_dir, log_path)
    try:
        _wait_ready(server)
        server.api_key = (data_dir / "api-key").read_text().strip()
        yield server
    finally:
        _stop(process)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with httpx.Client(base_url=server.base_url, timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"vidq serve exited with {server.process.returncode}:\n{server.log_tail()}"
                )
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(
        f"vidq serve did not become ready in {START_TIMEOUT_SECONDS:g} s:\n{server.log_tail()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def file_chunks(path: Path) -> Iterator[bytes]:
    """The file in pieces of `CHUNK_BYTES`, for a streamed request body."""
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def wait_completed(
    client: httpx.Client, job: dict[str, Any], timeout_seconds: float
) -> dict[str, Any]:
    """The Job once it has ended, polled with ?wait; RuntimeError unless it completed within
    `timeout_seconds`."""
    deadline = time.monotonic() + timeout_seconds
    while job["status"] not in FINISHED:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job['id']} did not finish in {timeout_seconds:g} s")
        reply = client.get(f"/job/{job['id']}", params={"wait": 60})
        reply.raise_for_status()
        job = reply.json()
    if job["status"] != "completed":
        raise RuntimeError(f"job {job['id']} ended {job['status']}: {job['error']}")
    return job


def download(client: httpx.Client, job: dict[str, Any], path: Path) -> None:
    """Save a completed job's output to `path` through its signed URL, with no key sent (as
    a browser fetches it)."""
    with client.stream(
        "GET", job["result"]["download_url"], headers={"Authorization": ""}
    ) as answer:
        answer.raise_for_status()
        with open(path, "wb") as handle:
            for chunk in answer.iter_bytes(CHUNK_BYTES):
                handle.write(chunk)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, for the figures."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def mean(values: list[float]) -> float:
    return sum(values) / len(values)

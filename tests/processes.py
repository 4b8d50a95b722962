"""Real `vidq` processes for acceptance tests: started through the CLI, stopped with signals."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

VIDQ = [sys.executable, "-m", "vidq.cli.main"]


@dataclass
class VidqProcess:
    """One `vidq serve|api|worker` subprocess and where it logs."""

    command: str
    data_dir: Path
    env: dict[str, str]
    port: int | None = None
    umask: int = -1  # the umask the process starts with; -1: this process's own
    # (soft, hard) limit on open files the process starts with; None: this process's own.
    open_files: tuple[int, int] | None = None
    args: list[str] = field(default_factory=list)  # flags after the command
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-{self.command}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> VidqProcess:
        env = {**os.environ, **self.env, "VIDQ_DATA_DIR": str(self.data_dir)}
        if self.port is not None:
            env["VIDQ_PORT"] = str(self.port)
        limit = self.open_files

        def set_open_files() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, limit)

        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*VIDQ, self.command, *self.args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                umask=self.umask,
                preexec_fn=set_open_files if limit is not None else None,
            )
        if wait and self.port is not None:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"vidq {self.command} exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"vidq {self.command} did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def ffmpeg_pids(self) -> list[int]:
        """ffmpeg processes this process started."""
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return ffmpeg_alive([p.pid for p in children])

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def ffmpeg_alive(pids: list[int]) -> list[int]:
    """Those of `pids` that are still running ffmpeg (not zombies)."""
    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE and "ffmpeg" in proc.name():
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive

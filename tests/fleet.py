"""A fleet of real vidq processes for the chaos test: API and worker processes to start, kill
and replace, a client that keeps submitting through whichever API answers, and readers of
what the fleet left behind (its logs, its bucket, its outputs)."""

from __future__ import annotations

import io
import random
import re
import signal
import subprocess
import threading
import time
import uuid
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import httpx
import psutil

from .conftest import free_port
from .processes import VidqProcess, ffmpeg_alive


@dataclass(frozen=True)
class JobSpec:
    """One job the test submits: which clip, which preset, whether it asks for a webhook."""

    clip: Path
    preset: str
    webhook: bool


@dataclass
class Fleet:
    """The API and worker processes of one fleet, alive and retired (their logs are kept)."""

    root: Path
    env: dict[str, str]
    worker_env: dict[str, str]
    apis: list[VidqProcess] = field(default_factory=list)
    workers: list[VidqProcess] = field(default_factory=list)
    retired: list[VidqProcess] = field(default_factory=list)
    started = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _next(self, kind: str) -> Path:
        self.started += 1
        return self.root / f"{kind}-{self.started}"

    def start_api(self) -> VidqProcess:
        api = VidqProcess("api", self._next("api"), self.env, port=free_port())
        api.start(wait=False)
        api.wait_ready(120)  # the machine may be slow
        with self.lock:
            self.apis.append(api)
        return api

    def start_worker(self) -> VidqProcess:
        """A new worker on a data directory of its own, as a new container would get."""
        worker = VidqProcess("worker", self._next("worker"), self.worker_env)
        worker.start(wait=False)
        self.workers.append(worker)
        return worker

    def api_urls(self) -> list[str]:
        with self.lock:
            return [api.url for api in self.apis]

    def kill_worker(self, rng: random.Random) -> tuple[VidqProcess, list[int]]:
        """kill -9 a random worker, two times in three one running ffmpeg if any is; returns
        it and the ffmpeg processes it had running."""
        busy = [w for w in self.workers if w.ffmpeg_pids()]
        victim = rng.choice(busy if busy and rng.random() < 2 / 3 else self.workers)
        ffmpeg = victim.ffmpeg_pids()
        victim.signal(signal.SIGKILL)
        victim.wait_exit(30)
        self.workers.remove(victim)
        self.retired.append(victim)
        return victim, ffmpeg

    def retire_api(self, api: VidqProcess) -> int:
        """SIGTERM an API process (taken out of the client's rotation first); its exit code:
        uvicorn ends by the signal once it has drained, as servers do (-SIGTERM)."""
        with self.lock:
            self.apis.remove(api)
        self.retired.append(api)
        api.signal(signal.SIGTERM)
        return api.wait_exit(60)

    def exited_unexpectedly(self) -> list[VidqProcess]:
        """Processes of the fleet that ended though nobody stopped them (taken out of it)."""
        gone = [
            p for p in [*self.apis, *self.workers] if p.process and p.process.poll() is not None
        ]
        for process in gone:
            with self.lock:
                if process in self.apis:
                    self.apis.remove(process)
            if process in self.workers:
                self.workers.remove(process)
            self.retired.append(process)
        return gone

    def stop_all(self) -> dict[str, int]:
        """SIGTERM every process still running; exit codes by log name (0 for a worker,
        0 or -SIGTERM for an API, see `retire_api`)."""
        codes = {}
        for process in [*self.apis, *self.workers]:
            process.stop()
            assert process.process is not None
            codes[process.log_path.name] = process.process.returncode
        return codes

    def logs(self) -> list[str]:
        return [p.log() for p in [*self.apis, *self.workers, *self.retired] if p.log_path.exists()]

    def worker_logs(self) -> list[str]:
        return [
            p.log()
            for p in [*self.workers, *self.retired]
            if p.command == "worker" and p.log_path.exists()
        ]


RETRIED_STATUSES = (409, 429, 502, 503, 504)


@dataclass
class Submitter:
    """Submits every job of a plan, each once, through whichever API process answers.

    A request cut off (an API stopping, a connection reset) or answered 503 is sent again
    with the same Idempotency-Key, to the next API: a job queued by a request whose answer
    was lost comes back as the same job, never a second one.
    """

    fleet: Fleet
    key: str
    webhook_url: str
    plan: list[JobSpec]
    pace_seconds: float = 0.0  # between two submissions, to spread them over the chaos
    accepted: dict[str, JobSpec] = field(default_factory=dict)
    retries: int = 0
    internal_errors: list[str] = field(default_factory=list)
    failure: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="submitter", daemon=True)
        self.thread.start()

    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()

    def _run(self) -> None:
        try:
            for n, spec in enumerate(self.plan):
                job = self._submit(n, spec)
                self.accepted[job["id"]] = spec
                time.sleep(self.pace_seconds)
        except BaseException as exc:
            self.failure = exc

    def _submit(self, n: int, spec: JobSpec) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": str(uuid.uuid4())}
        fields = {"preset": spec.preset, "metadata": f'{{"n": {n}}}'}
        if spec.webhook:
            fields["webhook_url"] = self.webhook_url
        deadline = time.monotonic() + 180
        for attempt in range(10_000):
            urls = self.fleet.api_urls()
            url = urls[(n + attempt) % len(urls)]
            try:
                with spec.clip.open("rb") as body:
                    answer = httpx.post(
                        f"{url}/convert",
                        headers=headers,
                        files={"file": (spec.clip.name, body, "video/mp4")},
                        data=fields,
                        timeout=120,
                    )
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code in (200, 202):
                job: dict[str, Any] = answer.json()
                return job
            if answer is not None and answer.status_code == 500:
                self.internal_errors.append(answer.text)
            elif answer is not None and answer.status_code not in RETRIED_STATUSES:
                raise AssertionError(f"job {n} refused: {answer.status_code} {answer.text}")
            assert time.monotonic() < deadline, f"job {n} was never accepted"
            self.retries += 1
            time.sleep(min(2.0, 0.2 * (attempt + 1)))
        raise AssertionError("unreachable")


_LOG_TIME = r"(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
_ATTEMPT = r"\(attempt (?P<attempt>\d+), lease (?P<lease>\w+), worker (?P<worker>\S+)\)"
STORING = re.compile(
    rf"^{_LOG_TIME} .*job (?P<job>[0-9a-f-]{{36}}): storing its output {_ATTEMPT}", re.M
)
COMPLETED = re.compile(rf"^{_LOG_TIME} .*job (?P<job>[0-9a-f-]{{36}}) completed {_ATTEMPT}", re.M)


@dataclass(frozen=True)
class LoggedEnd:
    at: datetime
    lease: str
    attempt: int


def ends_in_logs(logs: list[str], pattern: re.Pattern[str]) -> dict[str, list[LoggedEnd]]:
    """Each job's log lines of one kind (storing, completed), across every worker's log."""
    found: dict[str, list[LoggedEnd]] = defaultdict(list)
    for text in logs:
        for match in pattern.finditer(text):
            at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f")
            found[match["job"]].append(LoggedEnd(at, match["lease"], int(match["attempt"])))
    return found


def duplicate_runs(logs: list[str]) -> list[str]:
    """Jobs that ran to completion twice: completed under two leases, or stored again after
    they completed (a worker that lost its lease still writing)."""
    completions = ends_in_logs(logs, COMPLETED)
    stores = ends_in_logs(logs, STORING)
    duplicates = []
    for job_id, ends in completions.items():
        first = min(ends, key=lambda end: end.at)
        late = [s for s in stores.get(job_id, []) if s.lease != first.lease and s.at > first.at]
        if len(ends) > 1 or late:
            duplicates.append(job_id)
    return duplicates


def decoded_frames(data: bytes) -> int:
    """Frames (video, else audio) that a media file decodes to."""
    with av.open(io.BytesIO(data)) as container:
        kind = "video" if container.streams.video else "audio"
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        return sum(1 for _ in container.decode(stream))


def package_frames(zip_bytes: bytes, files: list[dict[str, Any]]) -> int:
    """Frames a streaming package's video decodes to: each rendition's init segment followed
    by its media segments, as a player appends them."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as package:
        names = set(package.namelist())
        assert {f["path"] for f in files} <= names, "the ZIP holds every listed file"
        frames = 0
        for init in (f for f in files if f["role"] == "init"):
            folder = init["path"].rsplit("/", 1)[0] if "/" in init["path"] else ""
            segments = sorted(
                f["path"] for f in files if f["role"] == "segment" and f["path"].startswith(folder)
            )
            stream = package.read(init["path"]) + b"".join(package.read(s) for s in segments)
            with av.open(io.BytesIO(stream)) as container:
                if container.streams.video:
                    frames += sum(1 for _ in container.decode(container.streams.video[0]))
        return frames


def leftover_children(root: Path) -> list[str]:
    """ffmpeg and probe processes still running for this fleet (their data dir under root)."""
    left = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "ffmpeg" not in (proc.info["name"] or "") and "_probe_child" not in cmdline:
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if str(root) in cmdline or str(root) in proc.environ().get("VIDQ_DATA_DIR", ""):
                left.append(f"{proc.pid} {cmdline[:200]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, subprocess.SubprocessError):
            continue
    return left


def still_running(pids: list[int]) -> list[int]:
    return ffmpeg_alive(pids)

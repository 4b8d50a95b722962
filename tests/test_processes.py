"""`vidq serve|api --processes N`: N processes answer on one port, and a job finished by a
worker anywhere reaches a waiter in any of them: `?wait`, `Prefer: wait`, the SSE stream,
webhooks; no process shows a stale status of it afterwards.

Real processes started through the CLI. Each test holds many connections to the port and
finds, with psutil, which server process accepted each, so that it can ask a given process
(the kernel spreads connections over them: SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import free_port
from .notify_receivers import WebhookReceiver
from .processes import VidqProcess
from .test_acceptance import _new_key

pytestmark = pytest.mark.slow

FINISHED = ("completed", "failed", "cancelled")
CONNECTIONS = 24  # held open to the port: both processes get some (each 1 in 2**23 not)


class Pinned:
    """One HTTP connection held open to the port, and the server process that accepted it."""

    def __init__(self, port: int, key: str, children: list[int]) -> None:
        self.port = port
        self.key = key
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        status, _, _ = self.request("GET", "/healthz")  # answered: accepted by now
        assert status == 200
        local = self.conn.sock.getsockname()[1]
        self.pid = accepting_pid(port, local, children)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        sent = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        self.conn.request(method, path, body=body, headers=sent)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def job(self, job_id: str, query: str = "") -> tuple[dict[str, Any], str]:
        status, headers, data = self.request("GET", f"/job/{job_id}{query}")
        assert status == 200, data
        return json.loads(data), headers["etag"]

    def submit(self, clip: Path, *, wait: int | None = None, **fields: str) -> tuple[int, Any]:
        built = httpx.Request(
            "POST",
            "http://vidq/convert",
            files={"file": (clip.name, clip.read_bytes(), "video/mp4")},
            data={"preset": "mp4-h264", **fields},
        )
        headers = {"Content-Type": built.headers["content-type"]}
        if wait is not None:
            headers["Prefer"] = f"wait={wait}"
        status, _, data = self.request("POST", "/convert", built.read(), headers)
        return status, json.loads(data)

    def events(self, job_id: str, first: threading.Event) -> list[dict[str, Any]]:
        """The Jobs of the job's SSE stream, until it ends; `first` is set at its first."""
        self.conn.request(
            "GET",
            f"/job/{job_id}/events",
            headers={"Authorization": f"Bearer {self.key}", "Accept": "text/event-stream"},
        )
        response = self.conn.getresponse()
        assert response.status == 200
        jobs = []
        for line in response:
            if line.startswith(b"data:"):
                jobs.append(json.loads(line[5:]))
                first.set()
        return jobs

    def close(self) -> None:
        self.conn.close()


def accepting_pid(port: int, client_port: int, children: list[int]) -> int:
    """Which of the server processes holds the server side of the client's connection."""
    for pid in children:
        for conn in psutil.Process(pid).net_connections(kind="tcp"):
            if (
                conn.laddr
                and conn.laddr.port == port
                and conn.raddr
                and conn.raddr.port == client_port
            ):
                return pid
    raise AssertionError(f"no server process holds the connection from port {client_port}")


def server_children(process: VidqProcess, count: int) -> list[int]:
    """The server processes the supervisor started, once every one listens on the port."""
    children = [p.pid for p in psutil.Process(process.pid).children()]
    assert len(children) == count, children
    deadline = time.monotonic() + 120
    while not all(listens(pid, process.port or 0) for pid in children):
        assert time.monotonic() < deadline, process.log()
        time.sleep(0.2)
    return children


def listens(pid: int, port: int) -> bool:
    return any(
        conn.status == psutil.CONN_LISTEN and conn.laddr.port == port
        for conn in psutil.Process(pid).net_connections(kind="tcp")
    )


@pytest.fixture
def connections() -> Iterator[list[Pinned]]:
    held: list[Pinned] = []
    yield held
    for pinned in held:
        pinned.close()


def spread(port: int, key: str, children: list[int], held: list[Pinned]) -> None:
    """CONNECTIONS connections open at once: every server process accepted some of them
    (the port is shared, not served by one process)."""
    by_pid = {pid: 0 for pid in children}
    for _ in range(CONNECTIONS):
        pinned = Pinned(port, key, children)
        held.append(pinned)
        by_pid[pinned.pid] += 1
    assert all(by_pid.values()), by_pid


class Processes:
    """Fresh connections to a chosen server process (an idle connection is closed after a
    few seconds, so each request, or held-open wait, gets its own)."""

    def __init__(self, port: int, key: str, children: list[int], held: list[Pinned]) -> None:
        self.port, self.key, self.children, self.held = port, key, children, held

    def on(self, pid: int) -> Pinned:
        for _ in range(CONNECTIONS * 2):
            pinned = Pinned(self.port, self.key, self.children)
            self.held.append(pinned)
            if pinned.pid == pid:
                return pinned
            pinned.close()
        raise AssertionError(f"no connection of {CONNECTIONS * 2} reached process {pid}")


def worker_slots(pinned: Pinned) -> float:
    status, _, data = pinned.request("GET", "/metrics")
    assert status == 200, data
    for family in text_string_to_metric_families(data.decode()):
        for sample in family.samples:
            if sample.name == "vidq_worker_slots":
                return sample.value
    raise AssertionError("no vidq_worker_slots in /metrics")


def in_thread(target: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(target(*args)), daemon=True)
    thread.start()
    return thread, result


def assert_same_everywhere(processes: Processes, job_id: str) -> dict[str, Any]:
    """Every process shows the job finished, as the same document (the same ETag)."""
    seen = {pid: processes.on(pid).job(job_id) for pid in processes.children}
    assert {job["status"] for job, _ in seen.values()} == {"completed"}
    assert len({etag for _, etag in seen.values()}) == 1
    return next(iter(seen.values()))[0]


def stop_supervisor(process: VidqProcess, children: list[int]) -> None:
    """SIGTERM to the supervisor stops every server process, and it exits 0."""
    process.signal(signal.SIGTERM)
    assert process.wait_exit(timeout=90) == 0, process.log()
    assert not [pid for pid in children if psutil.pid_exists(pid) and _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_serve_processes_on_sqlite_share_the_port_and_every_waiter_hears_the_end(
    tmp_path: Path, clip: Path, connections: list[Pinned]
) -> None:
    env = {
        "VIDQ_PROCESSES": "2",
        "VIDQ_WORKERS": "1",
        "VIDQ_WEBHOOK_ALLOW_PRIVATE": "1",
        "VIDQ_RATE_LIMIT_PER_SECOND": "0",
    }
    serve = VidqProcess("serve", tmp_path / "data", env, port=free_port())
    with WebhookReceiver() as receiver:
        try:
            serve.start(wait=False)
            serve.wait_ready(120)
            key = (tmp_path / "data" / "api-key").read_text().strip()
            children = server_children(serve, 2)
            spread(serve.port or 0, key, children, connections)
            processes = Processes(serve.port or 0, key, children, connections)

            # The workers run in one process only, not once per process.
            slots = {pid: worker_slots(processes.on(pid)) for pid in children}
            assert sorted(slots.values()) == [0, 1], slots
            other = next(pid for pid, n in slots.items() if n == 0)

            # Prefer: wait, answered by the process that runs no worker.
            status, job = processes.on(other).submit(clip, wait=60, webhook_url=receiver.url)
            assert status == 201, job
            assert job["status"] == "completed"

            # ?wait and the SSE stream, both in the process without workers.
            status, second = processes.on(other).submit(clip)
            assert status == 202, second
            sse, events = in_thread(processes.on(other).events, second["id"], threading.Event())
            waited, _ = processes.on(other).job(second["id"], "?wait=60")
            assert waited["status"] == "completed"
            sse.join(90)
            assert events and events[0][-1]["status"] == "completed"
            assert {e["status"] for e in events[0]} <= {"queued", "running", "completed"}
            done = assert_same_everywhere(processes, second["id"])
            assert events[0][-1] == done
            assert_same_everywhere(processes, job["id"])

            # The webhook of the first job, sent by the one notifier.
            deadline = time.monotonic() + 60
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.1)
            assert receiver.received
            assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
            assert json.loads(receiver.received[0].body)["type"] == "job.completed"

            # A server process that dies is started again.
            os.kill(other, signal.SIGKILL)
            deadline = time.monotonic() + 60

            def replaced() -> set[int]:
                return {p.pid for p in psutil.Process(serve.pid).children()} - set(children)

            while not replaced():
                assert time.monotonic() < deadline, "the killed process was not replaced"
                time.sleep(0.1)
            (replacement,) = replaced()
            now = {replacement, *(pid for pid in children if pid != other)}
            while not listens(replacement, serve.port or 0):
                assert time.monotonic() < deadline + 60, "the new process never listened"
                time.sleep(0.2)
            respawned = Processes(serve.port or 0, key, sorted(now), connections)
            assert respawned.on(replacement).job(job["id"])[0]["status"] == "completed"
            stop_supervisor(serve, sorted(now))
        finally:
            serve.stop()


def test_api_processes_on_postgres_wake_their_waiters_when_a_worker_ends_the_job(
    tmp_path: Path, clip: Path, postgres_url: str, connections: list[Pinned]
) -> None:
    shared = {
        "VIDQ_DATABASE_URL": postgres_url,
        "VIDQ_STORAGE_URL": (tmp_path / "files").as_uri(),
        "VIDQ_WORKERS": "1",
        "VIDQ_RATE_LIMIT_PER_SECOND": "0",
    }
    key = asyncio.run(_new_key(postgres_url))
    api = VidqProcess("api", tmp_path / "api", shared, port=free_port(), args=["--processes", "2"])
    worker = VidqProcess("worker", tmp_path / "worker", shared)
    try:
        api.start(wait=False)
        api.wait_ready(120)
        children = server_children(api, 2)
        spread(api.port or 0, key, children, connections)
        processes = Processes(api.port or 0, key, children, connections)
        first, second = children

        # Queued through one process; no worker runs yet, so every waiter below starts
        # before the job can end.
        status, job = processes.on(first).submit(clip)
        assert status == 202 and job["status"] == "queued", job
        heard = threading.Event()
        sse, events = in_thread(processes.on(second).events, job["id"], heard)
        assert heard.wait(60)
        waiting, waited = in_thread(processes.on(second).job, job["id"], "?wait=60")
        submitting, submitted = in_thread(lambda: processes.on(first).submit(clip, wait=60))
        time.sleep(1)  # the waits reach their processes (they cannot end before the worker)
        assert waiting.is_alive() and submitting.is_alive()

        worker.start()
        for thread in (waiting, submitting, sse):
            thread.join(90)
        assert waited[0][0]["status"] == "completed"
        assert submitted[0][0] == 201 and submitted[0][1]["status"] == "completed"
        assert events[0][0]["status"] == "queued"
        assert events[0][-1]["status"] == "completed"
        done = assert_same_everywhere(processes, job["id"])
        assert events[0][-1] == done
        assert_same_everywhere(processes, submitted[0][1]["id"])
        stop_supervisor(api, children)
    finally:
        worker.stop()
        api.stop()

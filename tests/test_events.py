"""Live updates: GET /job/{id}/events and GET /jobs/events (Server-Sent Events).

Against a live server: a job followed from the queue to its end (first event as it is,
progress at most once a second, ids that are GET's ETags, the stream closing after the
end), the owner's stream (new jobs, deletions), keep-alive comments, and the database's
work counted with 1 and with 50 clients on one job: the same. Clients that leave free
their feeds. Across processes: PostgreSQL NOTIFY, and SQLite's periodic re-read.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from vidq.db.database import Database
from vidq.jobs import queue
from vidq.jobs.accounts import create_owner
from vidq.jobs.runtime import Runtime
from vidq.jobs.subscriptions import JobChange

from .conftest import LiveServer, make_settings, running_server
from .helpers import assert_problem, submit_job
from .notify_receivers import INPUT_INFO


@dataclass
class Event:
    name: str | None = None
    id: str | None = None
    data: str = ""
    received_at: float = field(default_factory=time.monotonic)

    @property
    def job(self) -> dict[str, Any]:
        assert self.name == "job", self
        document: dict[str, Any] = json.loads(self.data)
        return document


def parse_events(lines: Iterator[str], comments: list[str] | None = None) -> Iterator[Event]:
    """Events of a text/event-stream, as its lines come (the SSE parsing rules, simply)."""
    current = Event()
    for line in lines:
        if line == "":
            if current.name or current.data:
                current.received_at = time.monotonic()
                yield current
            current = Event()
        elif line.startswith(":"):
            if comments is not None:
                comments.append(line)
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                current.name = value
            elif name == "id":
                current.id = value
            elif name == "data":
                current.data = f"{current.data}\n{value}" if current.data else value


@contextmanager
def stream(client: httpx.Client, path: str) -> Iterator[Iterator[Event]]:
    with client.stream("GET", path, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield parse_events(response.iter_lines())


def test_a_job_followed_to_its_end(tmp_path: Path, long_clip: Path) -> None:
    with running_server(make_settings(tmp_path)) as live, live.client() as client:
        job = submit_job(client, long_clip, preset="webm-vp9")
        with stream(client, f"/job/{job['id']}/events") as events:
            received = list(events)  # the stream ends by itself after the job's end
        final = client.get(f"/job/{job['id']}")
    documents = [e.job for e in received]
    assert documents[0]["status"] in ("queued", "running")
    assert documents[-1]["status"] == "completed" and documents[-1]["result"]["download_url"]
    # Every event is a change, and its id the ETag GET /job gives for that document.
    assert all(a.id != b.id for a, b in itertools.pairwise(received))
    assert received[-1].id == final.headers["ETag"] and documents[-1] == final.json()
    statuses = [d["status"] for d in documents]
    assert statuses == sorted(statuses, key=["queued", "running", "completed"].index)
    # Progress moved while running, at most once a second (heartbeats here are 0.2 s).
    running = [e for e in received if e.job["status"] == "running"]
    assert len(running) >= 3, statuses
    percents = [e.job["progress_percent"] for e in running]
    assert percents == sorted(percents) and percents[-1] > percents[0]
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(running)]
    assert min(gaps[1:], default=1.0) > 0.8, gaps
    # The estimate of the time left comes once there is a rate; null when not running.
    etas = [e.job["eta_seconds"] for e in running]
    assert any(eta is not None and eta > 0 for eta in etas), etas
    assert documents[-1]["eta_seconds"] is None


@pytest.fixture
def server_settings(tmp_path: Path) -> Any:
    """API only (nothing runs the queued jobs), no rate limit, quick keep-alives."""
    return make_settings(
        tmp_path,
        workers=0,
        rate_limit_per_second=0,
        events_keepalive_seconds=0.3,
        events_recheck_seconds=60,
    )


def test_events_of_the_owner_a_deletion_and_keepalives(live_server: LiveServer, clip: Path) -> None:
    with live_server.client() as client:
        first = submit_job(client, clip)
        other = live_server.client(live_server.new_key("someone-else"))
        assert_problem(other.get(f"/job/{first['id']}/events"), 404, "not_found")
        assert_problem(
            client.get("/job/00000000-0000-4000-8000-000000000000/events"), 404, "not_found"
        )
        assert_problem(httpx.get(f"{live_server.url}/jobs/events"), 401, "unauthorized")

        with client.stream("GET", "/jobs/events", timeout=30) as response:
            events = parse_events(response.iter_lines())
            # First the unfinished jobs as they are; then a new job, its cancel, a deletion.
            assert next(events).job["id"] == first["id"]
            second = submit_job(client, clip)
            assert next(events).job == client.get(f"/job/{second['id']}").json()
            # The first job's place did not move: nothing was sent for it.
            client.post(f"/job/{second['id']}/cancel")
            cancelled = next(events)
            assert cancelled.job["id"] == second["id"] and cancelled.job["status"] == "cancelled"
            assert client.delete(f"/job/{second['id']}").status_code == 204
            deleted = next(events)
            assert deleted.name == "deleted" and json.loads(deleted.data) == {"id": second["id"]}
            other.close()

        # A followed job that is deleted: `deleted`, and its stream ends. An idle stream
        # carries keep-alive comments.
        with client.stream("GET", f"/job/{first['id']}/events", timeout=30) as response:
            comments: list[str] = []
            events = parse_events(response.iter_lines(), comments)
            assert next(events).job["queue_position"] == 1
            time.sleep(0.8)
            assert client.delete(f"/job/{first['id']}").status_code == 204
            assert [(e.name, e.data) for e in events] == [
                ("deleted", json.dumps({"id": first["id"]}))
            ]
            assert ": keep-alive" in comments


class QueryCounter:
    """Counts the statements the server sends to its database (both engines)."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        self._lock = threading.Lock()
        for engine in {db.read_engine, db.write_engine}:
            event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        with self._lock:
            self.count += 1


@asynccontextmanager
async def subscribers(
    live: LiveServer, path: str, n: int
) -> AsyncIterator[list[asyncio.Queue[Any]]]:
    """`n` clients following `path` at once; each one's events arrive in its queue (None
    once its stream ends)."""
    headers = {"Authorization": f"Bearer {live.key}"}
    limits = httpx.Limits(max_connections=n + 5)
    async with httpx.AsyncClient(
        base_url=live.url, headers=headers, limits=limits, timeout=60
    ) as c:
        queues: list[asyncio.Queue[Any]] = [asyncio.Queue() for _ in range(n)]

        async def follow(q: asyncio.Queue[Any]) -> None:
            async with c.stream("GET", path) as response:
                assert response.status_code == 200
                lines: list[str] = []
                async for line in response.aiter_lines():
                    lines.append(line)
                    if line == "":
                        for e in parse_events(iter(lines)):
                            await q.put(e)
                        lines = []
            await q.put(None)

        tasks = [asyncio.create_task(follow(q)) for q in queues]
        try:
            yield queues
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _next_all(queues: list[asyncio.Queue[Any]]) -> list[Any]:
    return [await asyncio.wait_for(q.get(), 20) for q in queues]


async def _watch_and_count(
    live: LiveServer, counter: QueryCounter, clip: Path, n: int
) -> tuple[int, int]:
    """Two queued jobs; `n` clients follow the second; the first is cancelled (the second
    moves up), then the second (its end). Returns the statements counted while the clients
    subscribed, and while the two changes reached all of them."""
    with live.client() as client:
        ahead, watched = (submit_job(client, clip) for _ in range(2))
        before = counter.count
        async with subscribers(live, f"/job/{watched['id']}/events", n) as queues:
            assert {e.job["queue_position"] for e in await _next_all(queues)} == {2}
            subscribing = counter.count - before
            before = counter.count
            await asyncio.to_thread(client.post, f"/job/{ahead['id']}/cancel")
            assert {e.job["queue_position"] for e in await _next_all(queues)} == {1}
            await asyncio.to_thread(client.post, f"/job/{watched['id']}/cancel")
            assert {e.job["status"] for e in await _next_all(queues)} == {"cancelled"}
            assert await _next_all(queues) == [None] * n  # every stream ended
            changes = counter.count - before
    return subscribing, changes


def test_one_feed_per_job_whatever_the_clients(live_server: LiveServer, clip: Path) -> None:
    runtime: Runtime = live_server.app.state.runtime
    counter = QueryCounter(runtime.db)
    with live_server.client() as client:
        client.get("/presets")  # the key's first use this minute is noted (one more write)
        before = counter.count
        client.get("/presets")
        per_request = counter.count - before  # what checking a key costs

    one = asyncio.run(_watch_and_count(live_server, counter, clip, 1))
    fifty = asyncio.run(_watch_and_count(live_server, counter, clip, 50))
    print(f"statements: 1 client {one}, 50 clients {fifty}; a key check {per_request}")
    # The changes cost the same for 50 clients as for one: one read per change, fanned out.
    assert fifty[1] == one[1]
    # Subscribing costs each client its key check only; the job is read once.
    assert fifty[0] == one[0] + 49 * per_request
    assert runtime.feeds.counts() == {"job_feeds": 0, "owner_feeds": 0, "clients": 0}


def test_clients_that_leave_free_their_feeds(live_server: LiveServer, clip: Path) -> None:
    runtime: Runtime = live_server.app.state.runtime

    async def leave() -> None:
        with live_server.client() as client:
            job = submit_job(client, clip)
        async with (
            subscribers(live_server, f"/job/{job['id']}/events", 20) as on_job,
            subscribers(live_server, "/jobs/events", 5) as on_owner,
        ):
            await _next_all(on_job)
            await _next_all(on_owner)
            assert runtime.feeds.counts() == {"job_feeds": 1, "owner_feeds": 1, "clients": 25}
        # The clients hung up: the server notices and drops the feeds.
        for _ in range(100):
            if runtime.feeds.counts() == {"job_feeds": 0, "owner_feeds": 0, "clients": 0}:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(runtime.feeds.counts())

    asyncio.run(leave())


async def _queued_job(db: Database, owner_id: str) -> str:
    new = queue.NewJob(
        id=str(uuid.uuid4()),
        owner_id=owner_id,
        input_filename="in.mp4",
        input_content_type="video/mp4",
        input_size_bytes=1,
        input_sha256="0" * 64,
        input_info=INPUT_INFO,
        options={},
        metadata={},
        webhook_url=None,
        email=None,
    )
    return (await queue.submit(db, new, max_unfinished=100)).id


async def _next(subscription_events: AsyncIterator[Any]) -> Any:
    return await asyncio.wait_for(anext(subscription_events), 10)


async def test_changes_reach_the_feeds_of_another_process(
    tmp_path: Path, postgres_url: str
) -> None:
    """PostgreSQL: a worker process's claim and an API process's new job reach another API
    process's feeds by NOTIFY, at once (no periodic re-read there)."""
    api = await Runtime.open(make_settings(tmp_path / "api", database_url=postgres_url))
    worker = await Runtime.open(make_settings(tmp_path / "worker", database_url=postgres_url))
    try:
        assert api.feeds.recheck_seconds is None
        api.start_listening()
        await asyncio.sleep(0.5)  # let LISTEN take effect
        owner, _ = await create_owner(api.db, "alice")
        owner_id = owner.id
        job_id = await _queued_job(api.db, owner_id)
        one = (await api.feeds.follow_job(job_id, owner_id, base_url="http://x")).events()
        mine = (await api.feeds.follow_owner(owner_id, base_url="http://x")).events()
        assert (await _next(one)).document["status"] == "queued"
        assert (await _next(mine)).job_id == job_id

        claim = await queue.claim_next(worker.db, worker_id="w", lease_seconds=30)
        assert claim is not None
        await worker.announce_changed(JobChange(job_id, owner_id, queue_moved=True))
        assert (await _next(one)).document["status"] == "running"
        assert (await _next(mine)).document["status"] == "running"

        new_id = await _queued_job(worker.db, owner_id)
        await worker.announce_queued(JobChange(new_id, owner_id))
        seen = await _next(mine)
        assert seen.job_id == new_id and seen.document["queue_position"] == 1
    finally:
        await api.close()
        await worker.close()


async def test_sqlite_feeds_reread_what_another_process_changed(tmp_path: Path) -> None:
    """SQLite has no NOTIFY: a change another process makes, and announces only to itself,
    reaches this process's feed at its next re-read."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    settings = make_settings(tmp_path / "a", database_url=url, events_recheck_seconds=0.3)
    here = await Runtime.open(settings)
    there = await Runtime.open(make_settings(tmp_path / "b", database_url=url))
    try:
        owner, _ = await create_owner(here.db, "alice")
        owner_id = owner.id
        job_id = await _queued_job(here.db, owner_id)
        events = (await here.feeds.follow_job(job_id, owner_id, base_url="http://x")).events()
        assert (await _next(events)).document["status"] == "queued"
        await queue.claim_next(there.db, worker_id="w", lease_seconds=30)
        started = time.monotonic()
        assert (await _next(events)).document["status"] == "running"
        assert time.monotonic() - started < 2
    finally:
        await here.close()
        await there.close()


def test_events_need_a_key_and_an_id(live_server: LiveServer) -> None:
    assert_problem(httpx.get(f"{live_server.url}/job/x/events"), 401, "unauthorized")
    with live_server.client() as client:
        assert_problem(client.get("/job/not-a-uuid/events"), 404, "not_found")
    assert live_server.app.state.runtime.feeds.counts()["job_feeds"] == 0

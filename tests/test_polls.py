"""Status polls answered before routing (vidq.api.fast_polls): the same answers as the
route, and never a stale one, whoever changed the job (this process, another API process,
a worker process, a direct write) and whatever the database (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vidq.db.migrate import migrated_database
from vidq.jobs import accounts, queue, reads
from vidq.jobs.accounts import key_id_of
from vidq.jobs.polls import Polled, Polls

from .conftest import LiveServer, free_port, make_settings, running_server
from .helpers import api_client, assert_problem, submit_job
from .processes import VidqProcess

ORDER = {"queued": 0, "running": 1, "completed": 2, "failed": 2, "cancelled": 2}


class Counted:
    """Counts the polls the shortcut answered itself (the rest went to the route)."""

    def __init__(self, polls: Polls) -> None:
        self.polls = polls
        self.answered = 0
        self.original = polls.answer

    async def __call__(self, key: str, job_id: str, *, base_url: str) -> Polled | None:
        polled = await self.original(key, job_id, base_url=base_url)
        self.answered += polled is not None
        return polled


@pytest.fixture
def api_a(tmp_path: Path, db_url: str) -> Iterator[tuple[LiveServer, Counted]]:
    """API process A (this one, no workers), its shortcut counted."""
    settings = make_settings(
        tmp_path, db_url, workers=0, rate_limit_per_second=0, webhook_allow_private=True
    )
    with running_server(settings) as live:
        counted = Counted(live.app.state.polls)
        live.app.state.polls.answer = counted
        yield live, counted


def _env(live: LiveServer) -> dict[str, str]:
    return {
        "VIDQ_DATABASE_URL": live.settings.resolved_database_url,
        "VIDQ_STORAGE_URL": live.settings.resolved_storage_url,
        "VIDQ_RATE_LIMIT_PER_SECOND": "0",
        "VIDQ_POLL_SECONDS": "0.2",
        "VIDQ_HEARTBEAT_SECONDS": "0.2",
        "VIDQ_LOG_LEVEL": "warning",
    }


def _route_answer(client: httpx.Client, job_id: str) -> httpx.Response:
    """The route's own answer: `?wait` is never taken by the shortcut (and on a job that
    has ended, or with a wait this short, it changes nothing in the document)."""
    return client.get(f"/job/{job_id}", params={"wait": "0.001"})


def _same_answer(fast: httpx.Response, route: httpx.Response) -> None:
    assert fast.status_code == route.status_code == 200
    assert fast.content == route.content
    for header in ("etag", "retry-after", "content-type", "content-length"):
        assert fast.headers.get(header) == route.headers.get(header), header


def test_the_shortcut_answers_as_the_route_does(
    api_a: tuple[LiveServer, Counted], clip: Path
) -> None:
    live, counted = api_a
    with live.client() as client:
        first = submit_job(client, clip, preset="mp4-h264")
        second = submit_job(
            client,
            clip,
            preset="webm-vp9",
            webhook_url="http://127.0.0.1:9/hook",
            metadata='{"n": "é"}',
        )
        client.get(f"/job/{first['id']}")  # the key's first use is noted by the route
        for job in (first, second):
            before = counted.answered
            fast = client.get(f"/job/{job['id']}")
            assert counted.answered == before + 1
            _same_answer(fast, _route_answer(client, job["id"]))
        assert client.get(f"/job/{second['id']}").json()["queue_position"] == 2
        assert client.get(f"/job/{second['id']}").json()["notifications"]["webhook"] == {
            "url": "http://127.0.0.1:9/hook",
            "status": "pending",
            "attempts": 0,
            "last_error": None,
        }
        etag = client.get(f"/job/{first['id']}").headers["etag"]
        before = counted.answered
        again = client.get(f"/job/{first['id']}", headers={"If-None-Match": f'"x", {etag}'})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag and again.headers["retry-after"] == "5"
        assert counted.answered == before + 1
        # What the shortcut does not answer, the route does, the usual way.
        missing = "00000000-0000-4000-8000-000000000000"
        assert_problem(client.get(f"/job/{missing}"), 404, "not_found")
        assert_problem(client.get("/job/NOT-A-UUID"), 404, "not_found")
    with api_client(live.url, "vq_unknown") as stranger:
        assert_problem(stranger.get(f"/job/{first['id']}"), 401, "unauthorized")
    other = live.new_key("someone-else")
    with api_client(live.url, other) as someone:
        someone.get("/jobs")
        assert_problem(someone.get(f"/job/{first['id']}"), 404, "not_found")
    assert_problem(httpx.get(f"{live.url}/job/{first['id']}"), 401, "unauthorized")


def test_a_rate_limited_key_is_refused_by_the_route(tmp_path: Path, clip: Path) -> None:
    settings = make_settings(tmp_path, workers=0, rate_limit_per_second=0.01, rate_limit_burst=5)
    with running_server(settings) as live, live.client() as client:
        job = submit_job(client, clip, preset="mp4-h264")
        answers = [client.get(f"/job/{job['id']}").status_code for _ in range(6)]
        assert answers == [200, 200, 200, 200, 429, 429]


async def _with_db(url: str, work: Any) -> Any:
    async with migrated_database(url) as db:
        return await work(db)


def _status(live: LiveServer, job_id: str) -> str:
    async def read(db: Any) -> str:
        return str((await reads.get(db, job_id)).status)

    return str(asyncio.run(_with_db(live.settings.resolved_database_url, read)))


@pytest.mark.timeout(180)
def test_changes_by_others_are_seen_by_the_next_poll(
    api_a: tuple[LiveServer, Counted], clip: Path, tmp_path: Path
) -> None:
    """Each change, made by another process or a direct write, is in the very next poll."""
    live, counted = api_a
    url = live.settings.resolved_database_url
    api_b = VidqProcess("api", tmp_path / "b", _env(live), port=free_port())
    worker = VidqProcess("worker", tmp_path / "w", _env(live))
    try:
        api_b.start()
        with live.client() as client, api_client(api_b.url, live.key) as via_b:
            jobs = [submit_job(client, clip, preset="mp4-h264") for _ in range(3)]
            poll = lambda job_id: client.get(f"/job/{job_id}")  # noqa: E731
            first, second, third = (job["id"] for job in jobs)
            for job_id in (first, first, second, third):
                poll(job_id)  # the key's first use, then answers kept
            assert poll(third).json()["queue_position"] == 3

            # A direct write from another connection: claimed, then progress.
            async def claim(db: Any) -> Any:
                return await queue.claim_next(db, worker_id="test", lease_seconds=30)

            claimed = asyncio.run(_with_db(url, claim))
            assert claimed.job.id == first
            seen = poll(first).json()
            assert (seen["status"], seen["progress_percent"]) == ("running", 0.0)
            assert poll(third).json()["queue_position"] == 2

            async def progress(db: Any) -> Any:
                return await queue.heartbeat(
                    db, claimed, progress_percent=42.5, lease_seconds=30, eta_seconds=3.0
                )

            assert asyncio.run(_with_db(url, progress))
            seen = poll(first).json()
            assert (seen["progress_percent"], seen["eta_seconds"]) == (42.5, 3.0)

            # Another API process cancels and deletes.
            assert via_b.post(f"/job/{first}/cancel").status_code == 200
            assert poll(first).json()["status"] == "cancelled"
            assert poll(third).json()["queue_position"] == 2
            assert via_b.delete(f"/job/{second}").status_code == 204
            assert_problem(poll(second), 404, "not_found")
            assert poll(third).json()["queue_position"] == 1

            # A worker process runs the last one: never a poll older than the row.
            answered = counted.answered
            worker.start(wait=False)
            statuses = []
            while True:
                in_db = _status(live, third)
                seen = poll(third).json()
                statuses.append(seen["status"])
                assert ORDER[seen["status"]] >= ORDER[in_db], (in_db, seen)
                if seen["status"] == "completed":
                    assert seen["result"]["download_url"]
                    break
                assert seen["status"] in ("queued", "running"), seen
            assert counted.answered > answered
            # Links follow each request's Host (no VIDQ_PUBLIC_URL), kept answers too.
            elsewhere = client.get(f"/job/{third}", headers={"Host": "other.example:8080"})
            assert elsewhere.json()["result"]["download_url"].startswith(
                "http://other.example:8080/job/"
            )
            assert poll(third).json()["result"]["download_url"].startswith(f"{live.url}/job/")

            # A revoked key is refused by the next request.
            async def revoke(db: Any) -> Any:
                found = await accounts.list_keys(db)
                return await accounts.revoke_key(db, found[0].key_id)

            poll(third)
            revoked = asyncio.run(_with_db(url, revoke))
            assert revoked.key_id == key_id_of(accounts.hash_key(live.key))
            assert_problem(poll(third), 401, "unauthorized")
    finally:
        worker.stop()
        api_b.stop()

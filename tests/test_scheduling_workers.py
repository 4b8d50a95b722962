"""Scheduling with real `vidq worker` processes: fair share on one worker, FIFO without
it, and the per-owner cap held by three workers claiming from one PostgreSQL database.

An API process takes the uploads; workers start only once every job is queued, so the
order they start in is the scheduler's alone. Jobs are tiny clips.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from vidq.db.migrate import migrated_database
from vidq.db.models import Job
from vidq.jobs.accounts import create_owner

from .conftest import free_port
from .helpers import api_client, submit_job
from .processes import VidqProcess
from .test_acceptance import get_job, wait_finished

pytestmark = pytest.mark.slow


async def _keys(database_url: str, *names: str) -> list[str]:
    async with migrated_database(database_url) as database:
        return [(await create_owner(database, name))[1] for name in names]


async def _rows(database_url: str) -> list[Job]:
    async with migrated_database(database_url) as database, database.read() as conn:
        rows = (await conn.execute(select(Job.__table__))).mappings().all()
    return [Job.from_row(row) for row in rows]


def _env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "VIDQ_DATABASE_URL": database_url,
        "VIDQ_STORAGE_URL": (tmp_path / "files").as_uri(),
        "VIDQ_WORKERS": "1",
        "VIDQ_HEARTBEAT_SECONDS": "0.2",
        "VIDQ_POLL_SECONDS": "0.2",
        "VIDQ_FFMPEG_THREADS": "1",
        **extra,
    }


def _run(
    tmp_path: Path,
    env: dict[str, str],
    clip: Path,
    jobs: list[tuple[int, int]],
    workers: int,
    until: tuple[int, int] | None = None,
) -> tuple[list[list[str]], list[Job]]:
    """Queue jobs through an API process ((owner, how many), in that order), then start
    `workers` worker processes and wait for every job (or only for the job `until`,
    (owner, index)); the ids by owner and the rows."""
    keys = asyncio.run(_keys(env["VIDQ_DATABASE_URL"], "alice", "bob", "carol"))
    api = VidqProcess("api", tmp_path / "api", {**env, "VIDQ_WORKERS": "0"}, port=free_port())
    started: list[VidqProcess] = []
    ids: list[list[str]] = [[] for _ in keys]
    try:
        api.start()
        for owner, count in jobs:
            with api_client(api.url, keys[owner]) as client:
                ids[owner] += [submit_job(client, clip)["id"] for _ in range(count)]
        # The last job waits behind all the others when the queue is FIFO.
        last_owner = jobs[-1][0]
        last = get_job(api.url, keys[last_owner], ids[last_owner][-1])
        assert last["status"] == "queued" and last["priority"] == 0
        for n in range(workers):
            started.append(VidqProcess("worker", tmp_path / f"worker-{n}", env).start())
        waits = [until] if until else [(o, n) for o, got in enumerate(ids) for n in range(len(got))]
        for owner, n in waits:
            assert wait_finished(api.url, keys[owner], ids[owner][n])["status"] == "completed"
    finally:
        for process in [*started, api]:
            process.stop()
    return ids, asyncio.run(_rows(env["VIDQ_DATABASE_URL"]))


def _started_before(rows: list[Job], job_id: str) -> int:
    """How many jobs started before this one."""
    at = {row.id: row.started_at for row in rows}
    mine = at[job_id]
    assert mine is not None
    return sum(1 for other, when in at.items() if other != job_id and when and when < mine)


@pytest.mark.parametrize("fair_share", [True, False])
def test_a_single_job_is_not_held_back_by_a_burst(
    tmp_path: Path, clip: Path, fair_share: bool
) -> None:
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'vidq.db'}", VIDQ_FAIR_SHARE=str(fair_share))
    burst = 20 if fair_share else 6  # without fair share every one of them runs first
    # With fair share, waiting for Bob's job is enough: what started before it is known.
    until = (1, 0) if fair_share else None
    (alice, bob, _), rows = _run(tmp_path, env, clip, [(0, burst), (1, 1)], 1, until)
    # Alice's first job is the oldest; with fair share Bob's goes next, before her second.
    assert _started_before(rows, bob[0]) == (1 if fair_share else burst)
    started = [row for row in rows if row.started_at is not None]
    by_start = sorted(started, key=lambda row: row.started_at or datetime.max)
    assert [row.id for row in by_start if row.id in alice] == alice[: len(by_start) - 1]


_NOTE_RUNNING = (
    "CREATE TABLE running_seen (owner_id varchar(36), running integer)",
    """CREATE FUNCTION note_running() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO running_seen SELECT NEW.owner_id, count(*) FROM jobs
            WHERE owner_id = NEW.owner_id AND status = 'running';
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER note_running AFTER UPDATE OF status ON jobs FOR EACH ROW
    WHEN (NEW.status = 'running') EXECUTE FUNCTION note_running()""",
)


async def _watch_running(database_url: str) -> None:
    """Have the database note, at every claim, how many of that owner's jobs then run (seen
    inside the claiming transaction, so the count is the one its commit leaves)."""
    async with migrated_database(database_url) as database, database.write() as conn:
        for statement in _NOTE_RUNNING:
            await conn.execute(text(statement))


async def _most_running(database_url: str) -> dict[str, int]:
    async with migrated_database(database_url) as database, database.read() as conn:
        rows = await conn.execute(
            text("SELECT owner_id, max(running), count(*) FROM running_seen GROUP BY owner_id")
        )
        return {owner: int(most) for owner, most, _ in rows}


def test_the_cap_per_owner_holds_across_three_workers_on_postgres(
    tmp_path: Path, clip: Path, postgres_url: str
) -> None:
    asyncio.run(_watch_running(postgres_url))
    env = _env(tmp_path, postgres_url, VIDQ_FAIR_SHARE="true", VIDQ_MAX_RUNNING_PER_OWNER="1")
    ids, rows = _run(tmp_path, env, clip, [(0, 5), (1, 2), (2, 2)], workers=3)
    assert all(row.attempts == 1 and row.status == "completed" for row in rows)
    owners = {row.id: row.owner_id for row in rows}
    most = asyncio.run(_most_running(postgres_url))
    assert set(most) == {owners[owner_ids[0]] for owner_ids in ids}
    assert max(most.values()) == 1, most

"""Priorities, fair share and the per-owner cap, on the queue of a real database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from vidq.config import Settings
from vidq.db.database import Database
from vidq.db.fair_claim import Scheduling
from vidq.db.models import Job
from vidq.errors import InvalidOption
from vidq.jobs import queue, reads
from vidq.jobs.accounts import create_owner
from vidq.jobs.fair_position import estimate_place
from vidq.jobs.fields import check_json_fields
from vidq.jobs.options import resolve_options

from .conftest import LiveServer, make_settings
from .helpers import assert_problem, post_convert, submit_job
from .test_events import stream
from .test_queue import new_job

FAIR = Scheduling(fair_share=True)


async def _owners(db: Database, *names: str) -> list[str]:
    return [(await create_owner(db, name))[0].id for name in names]


async def _submit(db: Database, owner: str, priority: int = 0) -> str:
    options: dict[str, Any] = {"preset": "mp4-h264", "priority": priority}
    return (await queue.submit(db, new_job(owner, options=options), max_unfinished=100)).id


async def _claim_all(db: Database, scheduling: Scheduling = Scheduling()) -> list[str]:
    claimed = []
    while (
        claim := await queue.claim_next(db, worker_id="w", lease_seconds=30, scheduling=scheduling)
    ) is not None:
        claimed.append(claim.job.id)
    return claimed


async def _positions(db: Database, ids: list[str], *, fair_share: bool = False) -> list[int | None]:
    return [
        await reads.queue_position(db, await reads.get(db, job_id), fair_share=fair_share)
        for job_id in ids
    ]


def test_priority_option() -> None:
    assert resolve_options({}).priority == 0
    assert resolve_options({"priority": "-10"}).priority == -10
    assert resolve_options({"priority": "10"}).priority == 10
    for bad in ("11", "-11", "+1", "1.0", "one", "--1", "1e1"):
        with pytest.raises(InvalidOption) as caught:
            resolve_options({"priority": bad})
        assert caught.value.errors[0]["field"] == "priority"


async def test_higher_priority_starts_first_then_oldest(db: Database) -> None:
    (alice,) = await _owners(db, "alice")
    low = await _submit(db, alice, -5)
    first = await _submit(db, alice, 0)
    urgent = await _submit(db, alice, 10)
    second = await _submit(db, alice, 0)
    assert (await reads.get(db, urgent)).priority == 10
    expected = [urgent, first, second, low]
    assert await _positions(db, [low, first, urgent, second]) == [4, 2, 1, 3]
    assert await _claim_all(db) == expected


async def test_claims_by_priority_never_share_a_job(db: Database) -> None:
    (alice,) = await _owners(db, "alice")
    ids = {await _submit(db, alice, n % 3) for n in range(12)}
    for scheduling in (Scheduling(), FAIR):
        results = await asyncio.gather(
            *(
                queue.claim_next(db, worker_id=f"w{n}", lease_seconds=30, scheduling=scheduling)
                for n in range(8)
            )
        )
        for claim in results:
            if claim is not None:
                ids.remove(claim.job.id)
    assert len(ids) == 12 - 8 - 4


async def test_fair_share_one_owner_is_fifo(db: Database) -> None:
    (alice,) = await _owners(db, "alice")
    ids = [await _submit(db, alice, p) for p in (0, 0, 3, 0, 3)]
    expected = [ids[2], ids[4], ids[0], ids[1], ids[3]]
    assert await _positions(db, ids, fair_share=True) == await _positions(db, ids)
    assert await _claim_all(db, FAIR) == expected


async def test_fair_share_owners_take_turns(db: Database) -> None:
    alice, bob, carol = await _owners(db, "alice", "bob", "carol")
    a = [await _submit(db, alice) for _ in range(4)]
    b = [await _submit(db, bob) for _ in range(2)]
    c = await _submit(db, carol)
    c_low = await _submit(db, carol, -1)
    # Alice's first job is oldest of all; then the owners with none running go first.
    positions = await _positions(db, [*a, *b, c, c_low], fair_share=True)
    assert positions == [1, 4, 6, 7, 2, 5, 3, 8]
    claimed = await _claim_all(db, FAIR)
    assert claimed == [a[0], b[0], c, a[1], b[1], a[2], a[3], c_low]
    # Without fair share: strictly by priority, then age.
    await _reset(db)
    assert await _claim_all(db) == [*a, *b, c, c_low]


async def _reset(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(
            Job.__table__.update().values(status="queued", lease_token=None, worker_id=None)
        )


async def test_fair_share_favours_the_owner_with_fewest_running(db: Database) -> None:
    alice, bob = await _owners(db, "alice", "bob")
    early = [await _submit(db, alice) for _ in range(3)]
    assert len(await _claims(db, 2, FAIR)) == 2  # alice now has two running
    bob_jobs = [await _submit(db, bob) for _ in range(3)]
    # bob has none running: two of his jobs start before alice's third.
    assert await _positions(db, [early[2], *bob_jobs], fair_share=True) == [3, 1, 2, 4]
    assert await _claim_all(db, FAIR) == [bob_jobs[0], bob_jobs[1], early[2], bob_jobs[2]]


async def _claims(db: Database, n: int, scheduling: Scheduling) -> list[str]:
    out = []
    for _ in range(n):
        claim = await queue.claim_next(db, worker_id="w", lease_seconds=30, scheduling=scheduling)
        assert claim is not None
        out.append(claim.job.id)
    return out


@pytest.mark.parametrize("fair_share", [False, True])
async def test_cap_on_running_per_owner(db: Database, fair_share: bool) -> None:
    alice, bob = await _owners(db, "alice", "bob")
    a = [await _submit(db, alice, 5) for _ in range(4)]
    b = [await _submit(db, bob) for _ in range(2)]
    capped = Scheduling(fair_share=fair_share, max_running_per_owner=2)
    # Alice's higher priority wins until she is at her cap; then Bob's jobs start.
    assert await _claim_all(db, capped) == [a[0], a[1], *b]
    claim = await queue.claim_next(db, worker_id="w", lease_seconds=30, scheduling=capped)
    assert claim is None
    job = await reads.get(db, a[0])
    done = queue.Claim(job, job.lease_token or "")
    await queue.complete(
        db, done, output_key="x", result={}, retention_seconds=60, payloads=_payloads()
    )
    assert await _claim_all(db, capped) == [a[2]]


def _payloads() -> Any:
    from .test_queue import PAYLOADS

    return PAYLOADS


async def test_cap_holds_under_concurrent_claims(db: Database) -> None:
    owners = await _owners(db, "alice", "bob")
    for owner in owners:
        for _ in range(10):
            await _submit(db, owner)
    capped = Scheduling(fair_share=True, max_running_per_owner=3)
    results = await asyncio.gather(
        *(
            queue.claim_next(db, worker_id=f"w{n}", lease_seconds=30, scheduling=capped)
            for n in range(16)
        )
    )
    assert sum(claim is not None for claim in results) == 6
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(Job.owner_id, func.count())
                .where(Job.status == "running")
                .group_by(Job.owner_id)
            )
        ).all()
    assert sorted(n for _, n in rows) == [3, 3]


def test_estimate_place_formula() -> None:
    never = float("-inf")
    # One owner: its own index, behind the higher-priority jobs.
    assert (
        estimate_place(higher=2, own_index=3, own_running=0, own_turn=(never, 10), others=[]) == 5
    )
    # Another owner with 5 queued, none running, older: one job per turn ahead of ours.
    others = [(5, 0, (never, 1))]
    assert (
        estimate_place(higher=0, own_index=1, own_running=0, own_turn=(never, 9), others=others)
        == 2
    )
    assert (
        estimate_place(higher=0, own_index=3, own_running=0, own_turn=(never, 9), others=others)
        == 6
    )
    # Our owner already runs 2: the other owner catches up first, then we go first.
    assert (
        estimate_place(higher=0, own_index=1, own_running=2, own_turn=(5.0, 0), others=others) == 3
    )


async def test_fair_share_on_one_worker_takes_turns(db: Database) -> None:
    # One job running at a time: every count is 0 at each claim, so turns go by last start.
    alice, bob = await _owners(db, "alice", "bob")
    a = [await _submit(db, alice) for _ in range(5)]
    b = await _submit(db, bob)
    assert await _positions(db, [*a, b], fair_share=True) == [1, 3, 4, 5, 6, 2]
    order = []
    while (
        claim := await queue.claim_next(db, worker_id="w", lease_seconds=30, scheduling=FAIR)
    ) is not None:
        order.append(claim.job.id)
        await queue.complete(
            db, claim, output_key="x", result={}, retention_seconds=60, payloads=_payloads()
        )
    assert order == [a[0], b, *a[1:]]


@pytest.fixture
def server_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, workers=0)  # the jobs stay queued


def test_priority_on_post_convert_and_the_job(live_server: LiveServer, clip: Path) -> None:
    with live_server.client() as client:
        plain = submit_job(client, clip)
        urgent = submit_job(client, clip, priority="7")
        response = client.post(
            "/convert",
            params={"filename": "a.mp4", "priority": "-2"},
            content=clip.read_bytes(),
            headers={"Content-Type": "video/mp4"},
        )
        assert response.status_code == 202, response.text
        low = response.json()
        assert [plain["priority"], urgent["priority"], low["priority"]] == [0, 7, -2]
        assert urgent["options"]["priority"] == 7
        places = [
            client.get(f"/job/{j['id']}").json()["queue_position"] for j in (plain, urgent, low)
        ]
        assert places == [2, 1, 3]
        listed = {j["id"]: j["queue_position"] for j in client.get("/jobs").json()["jobs"]}
        assert [listed[j["id"]] for j in (plain, urgent, low)] == [2, 1, 3]
        body = assert_problem(post_convert(client, clip, priority="11"), 422, "invalid_option")
        assert [e["field"] for e in body["errors"]] == ["priority"]


async def test_priority_as_a_json_member(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    _, checked = await check_json_fields({"priority": -3}, settings)
    assert checked.options.priority == -3
    with pytest.raises(InvalidOption):
        await check_json_fields({"priority": 10.5}, settings)


def test_a_job_put_ahead_moves_the_places_in_live_updates(
    live_server: LiveServer, clip: Path
) -> None:
    with live_server.client() as client:
        low = submit_job(client, clip, priority="-1")
        with stream(client, f"/job/{low['id']}/events") as events:
            assert next(events).job["queue_position"] == 1
            submit_job(client, clip, priority="1")
            assert next(events).job["queue_position"] == 2

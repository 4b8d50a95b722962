"""The queue's operations on a real database, SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import update

from vidq.clock import utcnow
from vidq.db.database import Database
from vidq.db.models import Job
from vidq.errors import Conflict, NotFound, TooManyJobs
from vidq.jobs import queue, reads
from vidq.jobs.accounts import create_owner
from vidq.jobs.states import JobStatus
from vidq.jobs.views import NotificationPayloads
from vidq.notify import outbox

from .notify_receivers import INPUT_INFO

PAYLOADS = NotificationPayloads(secret="test-signing-key", public_url="http://vidq.test")


def new_job(owner_id: str, **overrides: Any) -> queue.NewJob:
    job_id = str(uuid.uuid4())
    values: dict[str, Any] = {
        "id": job_id,
        "owner_id": owner_id,
        "input_filename": "clip.mp4",
        "input_content_type": "video/mp4",
        "input_size_bytes": 1000,
        "input_sha256": "0" * 64,
        "input_info": INPUT_INFO,
        "options": {"preset": "mp4-h264"},
        "metadata": {},
        "webhook_url": None,
        "email": None,
    }
    values.update(overrides)
    return queue.NewJob(**values)


async def _owner(db: Database, name: str = "alice") -> str:
    account, _ = await create_owner(db, name)
    return account.id


async def test_claims_are_fifo_across_owners(db: Database) -> None:
    alice, bob = await _owner(db, "alice"), await _owner(db, "bob")
    submitted = []
    for owner in (alice, bob, alice, bob):
        submitted.append((await queue.submit(db, new_job(owner), max_unfinished=10)).id)
    positions = [await reads.queue_position(db, await reads.get(db, j)) for j in submitted]
    assert positions == [1, 2, 3, 4]
    claimed = []
    while (claim := await queue.claim_next(db, worker_id="w", lease_seconds=30)) is not None:
        claimed.append(claim.job.id)
        assert claim.job.status == "running" and claim.job.attempts == 1
    assert claimed == submitted


async def test_concurrent_claims_never_share_a_job(db: Database) -> None:
    owner = await _owner(db)
    ids = {(await queue.submit(db, new_job(owner), max_unfinished=50)).id for _ in range(12)}
    results = await asyncio.gather(
        *(queue.claim_next(db, worker_id=f"w{n}", lease_seconds=30) for n in range(20))
    )
    claimed = [c.job.id for c in results if c is not None]
    assert sorted(claimed) == sorted(ids)


async def test_unfinished_limit(db: Database) -> None:
    owner = await _owner(db)
    other = await _owner(db, "other")
    for _ in range(2):
        await queue.submit(db, new_job(owner), max_unfinished=2)
    with pytest.raises(TooManyJobs):
        await queue.submit(db, new_job(owner), max_unfinished=2)
    with pytest.raises(TooManyJobs):
        await reads.check_unfinished_limit(db, owner, 2)
    await queue.submit(db, new_job(other), max_unfinished=2)


async def test_heartbeat_is_fenced_by_the_lease_token(db: Database) -> None:
    owner = await _owner(db)
    job = await queue.submit(db, new_job(owner), max_unfinished=10)
    claim = await queue.claim_next(db, worker_id="w1", lease_seconds=30)
    assert claim is not None
    assert await queue.heartbeat(db, claim, progress_percent=40.0, lease_seconds=30)
    assert (await reads.get(db, job.id)).progress_percent == 40.0
    # The lease runs out and the job goes back to the queue; another worker takes it.
    async with db.write() as conn:
        await conn.execute(update(Job.__table__).values(lease_expires_at=utcnow()))
    assert await queue.recover_expired_leases(db, max_attempts=3, payloads=PAYLOADS) == [job.id]
    second = await queue.claim_next(db, worker_id="w2", lease_seconds=30)
    assert second is not None and second.job.id == job.id and second.job.attempts == 2
    # The first worker's writes are all refused now.
    assert not await queue.heartbeat(db, claim, progress_percent=90.0, lease_seconds=30)
    assert (
        await queue.complete(
            db, claim, output_key="x", result={}, retention_seconds=60, payloads=PAYLOADS
        )
        is None
    )
    assert (
        await queue.fail(db, claim, code="transcode_failed", message="x", payloads=PAYLOADS) is None
    )
    current = await reads.get(db, job.id)
    assert current.status == "running" and current.lease_token == second.lease_token
    assert current.progress_percent == 0.0


async def test_expired_lease_past_max_attempts_fails_worker_lost(db: Database) -> None:
    owner = await _owner(db)
    job = await queue.submit(db, new_job(owner), max_unfinished=10)
    for _ in range(2):
        assert await queue.claim_next(db, worker_id="w", lease_seconds=30) is not None
        async with db.write() as conn:
            await conn.execute(update(Job.__table__).values(lease_expires_at=utcnow()))
        await queue.recover_expired_leases(db, max_attempts=2, payloads=PAYLOADS)
    failed = await reads.get(db, job.id)
    assert failed.status == "failed" and failed.error_code == "worker_lost"


async def test_recover_a_dead_nodes_jobs_at_once(db: Database) -> None:
    owner = await _owner(db)
    first = await queue.submit(db, new_job(owner), max_unfinished=10)
    second = await queue.submit(db, new_job(owner), max_unfinished=10)
    await queue.claim_next(db, worker_id="node-a/1/x/0", lease_seconds=300)
    await queue.claim_next(db, worker_id="node-b/1/x/0", lease_seconds=300)
    recovered = await queue.recover_expired_leases(
        db, max_attempts=3, payloads=PAYLOADS, worker_prefix="node-a/"
    )
    assert recovered == [first.id]
    assert (await reads.get(db, first.id)).status == "queued"
    assert (await reads.get(db, second.id)).status == "running"
    # Back in its original place: first in line again.
    third = await queue.submit(db, new_job(owner), max_unfinished=10)
    assert await reads.queue_position(db, await reads.get(db, first.id)) == 1
    assert await reads.queue_position(db, third) == 2


async def test_release_at_shutdown_does_not_count_an_attempt(db: Database) -> None:
    owner = await _owner(db)
    job = await queue.submit(db, new_job(owner), max_unfinished=10)
    claim = await queue.claim_next(db, worker_id="w", lease_seconds=30)
    assert claim is not None
    assert await queue.requeue(db, claim, count_attempt=False)
    again = await reads.get(db, job.id)
    assert again.status == "queued" and again.attempts == 0


async def test_cancel_racing_finish_only_one_wins(db: Database) -> None:
    owner = await _owner(db)
    for _ in range(5):
        job = await queue.submit(
            db, new_job(owner, webhook_url="https://example.com/h"), max_unfinished=10
        )
        claim = await queue.claim_next(db, worker_id="w", lease_seconds=30)
        assert claim is not None

        async def cancel(job_id: str = job.id) -> str:
            try:
                await queue.request_cancel(db, job_id, owner, payloads=PAYLOADS)
            except Conflict:
                return "lost"
            return "cancelled"

        async def finish(claim: queue.Claim = claim) -> str:
            done = await queue.complete(
                db, claim, output_key="o", result={}, retention_seconds=60, payloads=PAYLOADS
            )
            return "completed" if done else "lost"

        outcomes = await asyncio.gather(cancel(), finish())
        assert sorted(outcomes) in (["cancelled", "lost"], ["completed", "lost"])
        final = await reads.get(db, job.id)
        assert final.status in ("cancelled", "completed")
        # Exactly one end, so exactly one notification.
        notes = await outbox.delivery_states(db, [job.id])
        assert len(notes[job.id]) == 1


async def test_cancel_and_remove(db: Database) -> None:
    owner = await _owner(db)
    other = await _owner(db, "mallory")
    job = await queue.submit(db, new_job(owner), max_unfinished=10)
    with pytest.raises(NotFound):
        await queue.request_cancel(db, job.id, other, payloads=PAYLOADS)
    cancelled = await queue.request_cancel(db, job.id, owner, payloads=PAYLOADS)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    with pytest.raises(Conflict):
        await queue.request_cancel(db, job.id, owner, payloads=PAYLOADS)
    with pytest.raises(NotFound):
        await queue.remove(db, job.id, other)
    await queue.remove(db, job.id, owner)
    with pytest.raises(NotFound):
        await reads.get(db, job.id)


async def test_list_pages_newest_first_with_status_filter(db: Database) -> None:
    owner = await _owner(db)
    ids = [(await queue.submit(db, new_job(owner), max_unfinished=20)).id for _ in range(5)]
    await queue.request_cancel(db, ids[1], owner, payloads=PAYLOADS)
    page, cursor = await reads.list_jobs(db, owner, statuses=[], limit=2, before_seq=None)
    assert [j.id for j in page] == [ids[4], ids[3]]
    seen = [j.id for j in page]
    while cursor is not None:
        page, cursor = await reads.list_jobs(db, owner, statuses=[], limit=2, before_seq=cursor)
        seen += [j.id for j in page]
    assert seen == list(reversed(ids))
    cancelled, _ = await reads.list_jobs(
        db, owner, statuses=["cancelled"], limit=10, before_seq=None
    )
    assert [j.id for j in cancelled] == [ids[1]]


async def test_an_end_written_but_not_acknowledged_is_told_from_a_lost_lease(
    db: Database,
) -> None:
    """A worker whose `complete` committed but whose answer was lost tries again: the
    second try matches nothing, and `ended_by` says the job ended under its own claim; a
    job re-leased to another worker or cancelled is not its own end."""
    owner = await _owner(db)
    await queue.submit(db, new_job(owner), max_unfinished=10)
    claim = await queue.claim_next(db, worker_id="w/1", lease_seconds=30)
    assert claim is not None
    done = dict(output_key="outputs/x.mp4", result={}, retention_seconds=60, payloads=PAYLOADS)
    assert await queue.complete(db, claim, **done) is not None
    assert await queue.complete(db, claim, **done) is None  # the retry: lease gone
    ended = await queue.ended_by(db, claim, JobStatus.COMPLETED)
    assert ended is not None and ended.id == claim.job.id
    assert await queue.ended_by(db, claim, JobStatus.FAILED) is None
    assert not await queue.cancelled_or_gone(db, claim.job.id)

    # The lease lost to another worker: not this claim's end.
    await queue.submit(db, new_job(owner), max_unfinished=10)
    first = await queue.claim_next(db, worker_id="w/1", lease_seconds=30)
    assert first is not None
    await queue.requeue(db, first, count_attempt=True)
    second = await queue.claim_next(db, worker_id="w/2", lease_seconds=30)
    assert second is not None and second.job.id == first.job.id
    assert await queue.complete(db, second, **done) is not None
    assert await queue.complete(db, first, **done) is None
    assert await queue.ended_by(db, first, JobStatus.COMPLETED) is None
    assert not await queue.cancelled_or_gone(db, first.job.id)

    # Cancelled, then deleted.
    job = await queue.submit(db, new_job(owner), max_unfinished=10)
    await queue.request_cancel(db, job.id, owner, payloads=PAYLOADS)
    assert await queue.cancelled_or_gone(db, job.id)
    await queue.remove(db, job.id, owner)
    assert await queue.cancelled_or_gone(db, job.id)

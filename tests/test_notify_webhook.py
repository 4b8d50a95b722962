"""Webhook delivery from the outbox to a real HTTP receiver on loopback (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from vidq import metrics
from vidq.config import Settings
from vidq.db.database import Database
from vidq.db.models import Notification
from vidq.jobs.accounts import Account, create_owner, new_webhook_secret
from vidq.notify import outbox
from vidq.notify.notifier import Notifier
from vidq.notify.webhook import parse_retry_after, serialize, signature

from .notify_receivers import Reply, WebhookReceiver, finished_job

notifications = Notification.__table__

# These test the HTTP side, not the database: one backend is enough.
HTTP_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _settings(db: Database, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db.url,
        "webhook_allow_private": True,
        "webhook_timeout_seconds": 2.0,
        "notify_retry_seconds": "0,0.2,0.2",
    }
    values.update(overrides)
    return Settings(**values)


def _count(outcome: str) -> float:
    labels = {"channel": "webhook", "outcome": outcome}
    value = metrics.REGISTRY.get_sample_value("vidq_notification_attempts_total", labels)
    return value or 0.0


@pytest.fixture
async def owner(db: Database) -> Account:
    account, _ = await create_owner(db, "alice")
    return account


async def _row(db: Database, job_id: str) -> dict[str, Any]:
    async with db.read() as conn:
        stmt = select(notifications).where(notifications.c.job_id == job_id)
        return dict((await conn.execute(stmt)).mappings().one())


async def _settled(db: Database, job_id: str, status: str) -> dict[str, Any]:
    """The row once it reaches `status` (within ten seconds)."""
    deadline = time.monotonic() + 10
    while True:
        row = await _row(db, job_id)
        if row["status"] == status:
            return row
        assert time.monotonic() < deadline, f"still {row['status']}: {row}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def notifier_for(db: Database) -> AsyncIterator[Any]:
    """Start notifiers with given settings; all are stopped at the end."""
    started: list[Notifier] = []

    def start(settings: Settings) -> Notifier:
        notifier = Notifier(settings, db, poll_seconds=0.1)
        notifier.start()
        started.append(notifier)
        return notifier

    yield start
    for notifier in started:
        await notifier.stop()


async def test_signed_per_standard_webhooks(
    db: Database, owner: Account, notifier_for: Any
) -> None:
    with WebhookReceiver() as receiver:
        job = await finished_job(db, owner.id, webhook_url=receiver.url)
        notifier_for(_settings(db))
        row = await _settled(db, job.id, "delivered")
    assert row["attempts"] == 1 and row["last_error"] is None
    assert len(receiver.received) == 1
    request = receiver.received[0]
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == row["id"]
    assert request.headers["webhook-id"].startswith("msg_")
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60

    document = Webhook(owner.webhook_secret).verify(request.body, request.headers)
    assert document["type"] == "job.failed"
    assert document["data"]["id"] == job.id
    assert document["data"]["status"] == "failed"
    assert document["data"]["error"]["code"] == "transcode_failed"
    assert document["timestamp"] == document["data"]["finished_at"]
    # The bytes signed are the bytes sent: the stored payload serialised once.
    assert request.body == serialize(row["payload"])

    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(request.body, request.headers)
    tampered = request.body.replace(b"transcode_failed", b"transcode_xxxxxx")
    with pytest.raises(WebhookVerificationError):
        Webhook(owner.webhook_secret).verify(tampered, request.headers)

    # The Job document shows the delivery.
    shown = await outbox.delivery_states(db, [job.id])
    assert shown[job.id] == [
        {
            "job_id": job.id,
            "channel": "webhook",
            "status": "delivered",
            "attempts": 1,
            "last_error": None,
        }
    ]


@HTTP_ONLY
async def test_completed_job_event(db: Database, owner: Account, notifier_for: Any) -> None:
    with WebhookReceiver() as receiver:
        job = await finished_job(db, owner.id, webhook_url=receiver.url, completed=True)
        notifier_for(_settings(db))
        await _settled(db, job.id, "delivered")
    document = json.loads(receiver.received[0].body)
    assert document["type"] == "job.completed"
    assert document["data"]["result"]["download_url"].startswith(f"http://vidq.test/job/{job.id}/")


async def test_error_then_success_keeps_the_webhook_id(
    db: Database, owner: Account, notifier_for: Any
) -> None:
    before = (_count("delivered"), _count("retry"))
    with WebhookReceiver([Reply(500), Reply(204)]) as receiver:
        job = await finished_job(db, owner.id, webhook_url=receiver.url)
        notifier_for(_settings(db))
        row = await _settled(db, job.id, "delivered")
    assert row["attempts"] == 2
    assert row["last_error"] == "HTTP 500"  # why it took two attempts
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert ids == [row["id"], row["id"]]
    for request in receiver.received:  # each attempt is signed afresh, and verifies
        Webhook(owner.webhook_secret).verify(request.body, request.headers)
    assert (_count("delivered"), _count("retry")) == (before[0] + 1, before[1] + 1)


@HTTP_ONLY
async def test_gone_stops_retries(db: Database, owner: Account, notifier_for: Any) -> None:
    with WebhookReceiver([Reply(410), Reply(204)]) as receiver:
        job = await finished_job(db, owner.id, webhook_url=receiver.url)
        notifier_for(_settings(db))
        row = await _settled(db, job.id, "failed")
        await asyncio.sleep(0.5)  # longer than the retry schedule: nothing more may come
    assert row["attempts"] == 1
    assert "410" in row["last_error"]
    assert len(receiver.received) == 1


@HTTP_ONLY
async def test_redirects_are_not_followed(db: Database, owner: Account, notifier_for: Any) -> None:
    with WebhookReceiver() as elsewhere:
        redirect = Reply(302, {"location": elsewhere.url})
        with WebhookReceiver([redirect, redirect, redirect]) as receiver:
            job = await finished_job(db, owner.id, webhook_url=receiver.url)
            notifier_for(_settings(db))
            row = await _settled(db, job.id, "failed")
    assert len(receiver.received) == 3
    assert elsewhere.connections == 0 and elsewhere.received == []
    assert row["attempts"] == 3
    assert "redirects are not followed" in row["last_error"]
    assert "gave up after 3 attempts" in row["last_error"]


@HTTP_ONLY
async def test_network_errors_are_retried_until_the_last_attempt(
    db: Database, owner: Account, notifier_for: Any
) -> None:
    with WebhookReceiver() as receiver:
        url = receiver.url
    # The receiver is closed: every attempt is refused.
    job = await finished_job(db, owner.id, webhook_url=url)
    notifier_for(_settings(db))
    row = await _settled(db, job.id, "failed")
    assert row["attempts"] == 3
    assert "ConnectError" in row["last_error"]


@HTTP_ONLY
async def test_timeouts_are_retried(db: Database, owner: Account, notifier_for: Any) -> None:
    release = threading.Event()
    with WebhookReceiver([Reply(204, hold=release)]) as receiver:
        job = await finished_job(db, owner.id, webhook_url=receiver.url)
        notifier_for(_settings(db, webhook_timeout_seconds=0.3))
        row = await _settled(db, job.id, "delivered")
        release.set()
    assert row["attempts"] == 2
    assert "timed out" in row["last_error"]
    assert [r.headers["webhook-id"] for r in receiver.received] == [row["id"]] * 2


@HTTP_ONLY
async def test_retry_after_is_honoured(db: Database, owner: Account, notifier_for: Any) -> None:
    with WebhookReceiver([Reply(503, {"retry-after": "1"}), Reply(204)]) as receiver:
        job = await finished_job(db, owner.id, webhook_url=receiver.url)
        notifier_for(_settings(db, notify_retry_seconds="0,0.05"))
        await _settled(db, job.id, "delivered")
    first, second = receiver.received
    assert second.at - first.at >= 0.95


async def test_two_notifiers_never_make_the_same_attempt(
    db: Database, owner: Account, notifier_for: Any
) -> None:
    jobs = []
    with WebhookReceiver() as receiver:
        for _ in range(6):
            jobs.append(await finished_job(db, owner.id, webhook_url=receiver.url))
        settings = _settings(db)
        notifier_for(settings)
        notifier_for(settings)
        for job in jobs:
            await _settled(db, job.id, "delivered")
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 6 and len(set(ids)) == 6


async def test_an_expired_lease_is_taken_over(db: Database, owner: Account) -> None:
    """A notifier that died mid-attempt leaves a lease; once it runs out, another retries."""
    with WebhookReceiver() as receiver:
        job = await finished_job(db, owner.id, webhook_url=receiver.url)
        # Leases long enough that a loaded machine still checks "still leased" in time.
        leased = await outbox.lease_due(db, limit=10, lease_seconds=3)  # then "dies"
        assert [n.job_id for n in leased] == [job.id]
        assert await outbox.lease_due(db, limit=10, lease_seconds=3) == []
        notifier = Notifier(_settings(db), db)
        try:
            assert await notifier.deliver_due() == 0  # still leased
            await asyncio.sleep(3.2)
            assert await notifier.deliver_due() == 1
        finally:
            await notifier.stop()
    row = await _row(db, job.id)
    assert row["status"] == "delivered" and row["attempts"] == 2
    # The dead notifier's late outcome cannot overwrite the newer attempt.
    assert not await outbox.record_failed(db, leased[0], error="late")
    assert (await _row(db, job.id))["status"] == "delivered"


@HTTP_ONLY
async def test_unwanted_jobs_send_nothing(db: Database, owner: Account) -> None:
    await finished_job(db, owner.id)
    notifier = Notifier(_settings(db), db)
    try:
        assert await notifier.deliver_due() == 0
    finally:
        await notifier.stop()


def test_signature_matches_the_reference_library() -> None:
    secret = new_webhook_secret()
    body = serialize({"type": "job.completed", "data": {"name": "café ✓"}})
    header = signature(secret, "msg_1", 1_700_000_000, body)
    from datetime import UTC, datetime

    expected = Webhook(secret).sign(
        "msg_1", datetime.fromtimestamp(1_700_000_000, UTC), body.decode()
    )
    assert header == expected


def test_retry_after_parsing() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_retry_schedule() -> None:
    schedule = [0.0, 10.0, 100.0]
    first = outbox.retry_delay_seconds(schedule, 1, retry_after_seconds=None, max_retry_after=60)
    assert first is not None and 9.4 <= first <= 10.6  # jitter of a few percent
    # Retry-After lengthens the wait, capped; it never shortens it.
    assert outbox.retry_delay_seconds(schedule, 1, retry_after_seconds=30, max_retry_after=60) == 30
    assert (
        outbox.retry_delay_seconds(schedule, 1, retry_after_seconds=999, max_retry_after=60) == 60
    )
    longer = outbox.retry_delay_seconds(schedule, 2, retry_after_seconds=1, max_retry_after=60)
    assert longer is not None and longer > 90
    assert (
        outbox.retry_delay_seconds(schedule, 3, retry_after_seconds=None, max_retry_after=60)
        is None
    )

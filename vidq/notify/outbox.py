"""The notification outbox, all of it: rows written when a job ends, leased, and settled.

`enqueue` writes a job's rows in the same transaction as its status change (so a job
never ends without its notifications, nor notifies without ending); `delivery_states`
reads them back for the Job document; the notifier leases due rows and records each
attempt's outcome.

A row is due when it is `pending`, its `next_attempt_at` has come, and no live lease
holds it. Leasing a row counts the attempt (so an attempt cut short by a crash still
counts) and sets `lease_expires_at`; while the lease runs no other notifier takes the
row. Outcomes are recorded only if `attempts` still equals the count the lease was
taken at, so a notifier whose lease ran out cannot overwrite a newer attempt.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vidq.clock import utcnow
from vidq.db.database import Database
from vidq.db.models import Notification, Owner, table_of

notifications = table_of(Notification)
owners = table_of(Owner)

JITTER_FRACTION = 0.05


async def enqueue(
    conn: AsyncConnection,
    *,
    job_id: str,
    owner_id: str,
    targets: Sequence[tuple[str, str | None]],
    event: dict[str, Any],
    now: datetime,
) -> None:
    """One pending row per `(channel, target)` with a target, carrying `event` as its body."""
    for channel, target in targets:
        if not target:
            continue
        await conn.execute(
            insert(notifications).values(
                id=f"msg_{uuid.uuid4().hex}",
                job_id=job_id,
                owner_id=owner_id,
                channel=channel,
                target=target,
                event_type=event["type"],
                payload=event,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )


async def delivery_states(db: Database, job_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Each job's rows (channel, status, attempts, last error), by job id."""
    if not job_ids:
        return {}
    stmt = select(
        notifications.c.job_id,
        notifications.c.channel,
        notifications.c.status,
        notifications.c.attempts,
        notifications.c.last_error,
    ).where(notifications.c.job_id.in_(list(job_ids)))
    found: dict[str, list[dict[str, Any]]] = {}
    async with db.read() as conn:
        for row in (await conn.execute(stmt)).mappings():
            found.setdefault(row["job_id"], []).append(dict(row))
    return found


@dataclass(frozen=True)
class LeasedNotification:
    """One attempt to make: the row as leased, with its owner's signing secret."""

    id: str
    job_id: str
    channel: str
    target: str
    payload: dict[str, Any]
    attempts: int  # including this attempt
    webhook_secret: str | None


def _due(now: datetime) -> Any:
    return and_(
        notifications.c.status == "pending",
        notifications.c.next_attempt_at <= now,
        or_(notifications.c.lease_expires_at.is_(None), notifications.c.lease_expires_at < now),
    )


async def lease_due(db: Database, *, limit: int, lease_seconds: float) -> list[LeasedNotification]:
    """Lease up to `limit` due rows, oldest due first, counting one attempt on each."""
    now = utcnow()
    due = select(notifications.c.id).where(_due(now)).order_by(notifications.c.next_attempt_at)
    due = due.limit(limit)
    async with db.write() as conn:
        if conn.dialect.name == "postgresql":
            # Rows another notifier is leasing right now are skipped, not waited for.
            due = due.with_for_update(skip_locked=True)
        stmt = (
            update(notifications)
            .where(notifications.c.id.in_(due.scalar_subquery()), _due(now))
            .values(
                attempts=notifications.c.attempts + 1,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
            .returning(
                notifications.c.id,
                notifications.c.job_id,
                notifications.c.owner_id,
                notifications.c.channel,
                notifications.c.target,
                notifications.c.payload,
                notifications.c.attempts,
            )
        )
        rows = (await conn.execute(stmt)).mappings().all()
        secrets = await _secrets(conn, {r["owner_id"] for r in rows if r["channel"] == "webhook"})
    leased = [
        LeasedNotification(
            id=r["id"],
            job_id=r["job_id"],
            channel=r["channel"],
            target=r["target"],
            payload=r["payload"],
            attempts=r["attempts"],
            webhook_secret=secrets.get(r["owner_id"]),
        )
        for r in rows
    ]
    leased.sort(key=lambda n: n.id)
    return leased


async def _secrets(conn: AsyncConnection, owner_ids: set[str]) -> dict[str, str]:
    if not owner_ids:
        return {}
    stmt = select(owners.c.id, owners.c.webhook_secret).where(owners.c.id.in_(owner_ids))
    return {row.id: row.webhook_secret for row in await conn.execute(stmt)}


def retry_delay_seconds(
    schedule: list[float],
    attempts: int,
    *,
    retry_after_seconds: float | None,
    max_retry_after: float,
) -> float | None:
    """Seconds to wait before the next attempt after `attempts` failed ones; None: give up.

    The schedule holds the delay before each attempt, so its length is the number of
    attempts. A receiver's Retry-After (capped) can lengthen the wait, never shorten it.
    """
    if attempts >= len(schedule):
        return None
    delay = schedule[attempts] * (1 + random.uniform(-JITTER_FRACTION, JITTER_FRACTION))
    if retry_after_seconds is not None:
        delay = max(delay, min(retry_after_seconds, max_retry_after))
    return delay


def _leased_by(note: LeasedNotification) -> Any:
    return and_(
        notifications.c.id == note.id,
        notifications.c.status == "pending",
        notifications.c.attempts == note.attempts,
    )


async def _record(db: Database, note: LeasedNotification, values: dict[str, Any]) -> bool:
    now = utcnow()
    async with db.write() as conn:
        result = await conn.execute(
            update(notifications)
            .where(_leased_by(note))
            .values(lease_expires_at=None, updated_at=now, **values)
        )
    return result.rowcount == 1


async def record_delivered(db: Database, note: LeasedNotification) -> bool:
    """Mark a leased row delivered (its last error, if any, is kept). False: lease lost."""
    return await _record(db, note, {"status": "delivered", "next_attempt_at": None})


async def record_retry(
    db: Database, note: LeasedNotification, *, error: str, delay_seconds: float
) -> bool:
    """Schedule a leased row's next attempt after a failed one. False: lease lost."""
    next_attempt_at = utcnow() + timedelta(seconds=delay_seconds)
    return await _record(db, note, {"last_error": error, "next_attempt_at": next_attempt_at})


async def record_failed(db: Database, note: LeasedNotification, *, error: str) -> bool:
    """Give up on a leased row: no more attempts. False: lease lost."""
    return await _record(
        db, note, {"status": "failed", "last_error": error, "next_attempt_at": None}
    )


async def next_due_at(db: Database) -> datetime | None:
    """When the earliest pending row comes due: at its next attempt, or when its lease runs out."""
    due_at = func.coalesce(notifications.c.lease_expires_at, notifications.c.next_attempt_at)
    stmt = select(func.min(due_at)).where(notifications.c.status == "pending")
    async with db.read() as conn:
        value = (await conn.execute(stmt)).scalar()
    return value if isinstance(value, datetime) else None

"""Idempotency-Key: a retried POST /convert gets the first job back instead of a second one.

A key is reserved (job_id NULL) before the upload is read, bound to the job in the same
transaction that queues it, and forgotten after 24 hours. Same key and same payload
(the fields, the file's name as sent and a hash of the bytes): the first job again.
Different payload: 422. The first request still uploading: 409.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from vidq.clock import utcnow
from vidq.db.database import Database
from vidq.db.models import IdempotencyKey, table_of
from vidq.errors import Conflict

keys = table_of(IdempotencyKey)
KEY_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class PriorRequest:
    """What an earlier request with the same key did."""

    job_id: str
    request_hash: str


def request_hash(fields: Mapping[str, str], filename: str | None, content_sha256: str) -> str:
    """A fingerprint of a /convert request: its fields, its file's name as sent, its bytes."""
    canonical = json.dumps([sorted(fields.items()), filename], separators=(",", ":"))
    return hashlib.sha256(f"{canonical}\n{content_sha256}".encode()).hexdigest()


async def reserve(db: Database, owner_id: str, key: str) -> PriorRequest | None:
    """Claim `key` for a new request, or return what the earlier request with it made.

    Raises Conflict while the earlier request is still uploading.
    """
    now = utcnow()
    this_key = and_(keys.c.owner_id == owner_id, keys.c.key == key)
    async with db.write() as conn:
        # A key older than its lifetime is free again.
        await conn.execute(delete(keys).where(this_key, keys.c.created_at < now - KEY_LIFETIME))
        row = (
            await conn.execute(select(keys.c.job_id, keys.c.request_hash).where(this_key))
        ).first()
        if row is None:
            try:
                await conn.execute(insert(keys).values(owner_id=owner_id, key=key, created_at=now))
            except IntegrityError as exc:  # PostgreSQL: another request reserved it just now
                raise Conflict(
                    "A request with this Idempotency-Key is still being received."
                ) from exc
            return None
    if row.job_id is None:
        raise Conflict("A request with this Idempotency-Key is still being received.")
    return PriorRequest(job_id=row.job_id, request_hash=row.request_hash or "")


async def bind(conn: AsyncConnection, owner_id: str, key: str, job_id: str, digest: str) -> None:
    """Tie a reserved key to the job it made (in the transaction that queues the job)."""
    await conn.execute(
        update(keys)
        .where(keys.c.owner_id == owner_id, keys.c.key == key)
        .values(job_id=job_id, request_hash=digest)
    )


async def cancel_reservation(db: Database, owner_id: str, key: str) -> None:
    """Give up a reservation whose request failed, so the client may retry with the key."""
    async with db.write() as conn:
        await conn.execute(
            delete(keys).where(
                keys.c.owner_id == owner_id, keys.c.key == key, keys.c.job_id.is_(None)
            )
        )


async def forget(db: Database, owner_id: str, key: str) -> None:
    """Drop a key whose job no longer exists."""
    async with db.write() as conn:
        await conn.execute(delete(keys).where(keys.c.owner_id == owner_id, keys.c.key == key))


async def sweep(db: Database, *, stale_reservation_seconds: float) -> int:
    """Forget expired keys and reservations whose request never finished."""
    now = utcnow()
    async with db.write() as conn:
        result = await conn.execute(
            delete(keys).where(
                (keys.c.created_at < now - KEY_LIFETIME)
                | (
                    keys.c.job_id.is_(None)
                    & (keys.c.created_at < now - timedelta(seconds=stale_reservation_seconds))
                )
            )
        )
    return int(result.rowcount or 0)

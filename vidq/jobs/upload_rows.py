"""The rows of resumable uploads: one named query per thing `resumable` does with them.

Every change is a conditional UPDATE or DELETE, so that two requests racing (two chunks,
a chunk and a termination, a termination and a POST /convert, the janitor and either)
cannot both win: a write lock (`lock_token` until `locked_until`) admits one writer, and
`used_at` marks an upload a job took, whose blob is the job's from then on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update

from vidq.db.database import Database
from vidq.db.models import Upload, table_of
from vidq.jobs.strict import is_job_id

uploads = table_of(Upload)


def _this(upload_id: str, owner_id: str | None = None) -> Any:
    condition = uploads.c.id == upload_id
    return condition if owner_id is None else and_(condition, uploads.c.owner_id == owner_id)


def _unlocked(now: datetime) -> Any:
    return or_(uploads.c.locked_until.is_(None), uploads.c.locked_until < now)


async def _update_returning(db: Database, condition: Any, values: dict[str, Any]) -> Upload | None:
    async with db.write() as conn:
        row = (
            (
                await conn.execute(
                    update(uploads).where(condition).values(**values).returning(*uploads.columns)
                )
            )
            .mappings()
            .first()
        )
    return None if row is None else Upload(**row)


async def get(db: Database, upload_id: str, owner_id: str) -> Upload | None:
    """One of the owner's uploads (expired or not), or None."""
    if not is_job_id(upload_id):
        return None
    async with db.read() as conn:
        row = (
            (await conn.execute(select(uploads).where(_this(upload_id, owner_id))))
            .mappings()
            .first()
        )
    return None if row is None else Upload(**row)


async def add(db: Database, values: dict[str, Any]) -> Upload:
    """A new upload row."""
    async with db.write() as conn:
        await conn.execute(insert(uploads).values(**values))
    return Upload(**values)


async def lock(
    db: Database, upload_id: str, owner_id: str, token: str, *, now: datetime, until: datetime
) -> Upload | None:
    """Take the write lock of an unfinished, unexpired upload no other request holds."""
    if not is_job_id(upload_id):
        return None
    condition = and_(
        _this(upload_id, owner_id),
        uploads.c.expires_at > now,
        uploads.c.finished_at.is_(None),
        _unlocked(now),
    )
    return await _update_returning(db, condition, {"lock_token": token, "locked_until": until})


async def renew(db: Database, upload_id: str, token: str, *, until: datetime) -> bool:
    """Hold the lock longer; False if it is no longer ours."""
    async with db.write() as conn:
        result = await conn.execute(
            update(uploads)
            .where(_this(upload_id), uploads.c.lock_token == token)
            .values(locked_until=until)
        )
    return result.rowcount == 1


async def release(db: Database, upload_id: str, token: str | None, **values: Any) -> bool:
    """Record `values` and let go of the lock, if it is still ours (`token` None: no lock
    was taken, as for an upload finished when it is made)."""
    condition = _this(upload_id)
    if token is not None:
        condition = and_(condition, uploads.c.lock_token == token)
    async with db.write() as conn:
        result = await conn.execute(
            update(uploads).where(condition).values(lock_token=None, locked_until=None, **values)
        )
    return result.rowcount == 1


async def take(db: Database, upload_id: str, owner_id: str, *, now: datetime) -> Upload | None:
    """Mark a finished, unexpired, unused upload used."""
    if not is_job_id(upload_id):
        return None
    condition = and_(
        _this(upload_id, owner_id),
        uploads.c.finished_at.is_not(None),
        uploads.c.used_at.is_(None),
        uploads.c.expires_at > now,
    )
    return await _update_returning(db, condition, {"used_at": now, "updated_at": now})


async def give_back(db: Database, upload_id: str) -> None:
    """Mark an upload unused again."""
    async with db.write() as conn:
        await conn.execute(update(uploads).where(_this(upload_id)).values(used_at=None))


async def remove(
    db: Database,
    upload_id: str,
    *,
    now: datetime,
    owner_id: str | None = None,
    untaken: bool = False,
    expired: bool = False,
) -> bool:
    """Delete an upload's row unless a request is writing to it (with `untaken`: only if no
    job took it; with `expired`: only if it has expired); whether it was deleted."""
    condition = and_(_this(upload_id, owner_id), _unlocked(now))
    if untaken:
        condition = and_(condition, uploads.c.used_at.is_(None))
    if expired:
        condition = and_(condition, uploads.c.expires_at <= now)
    async with db.write() as conn:
        result = await conn.execute(delete(uploads).where(condition))
    return result.rowcount == 1


async def expired(db: Database, *, now: datetime) -> list[Upload]:
    """Uploads past their expiry that no request is writing to."""
    stmt = select(uploads).where(uploads.c.expires_at <= now, _unlocked(now))
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).mappings().all()
    return [Upload(**row) for row in rows]


def updated(upload: Upload, values: dict[str, Any]) -> Upload:
    """A copy of an upload row with `values` (and no lock), as `release` leaves it."""
    columns = {column.key: getattr(upload, column.key) for column in uploads.columns}
    columns.update(values, lock_token=None, locked_until=None)
    return Upload(**columns)

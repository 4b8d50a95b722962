"""The server_settings table: values every process of a fleet shares, each made once.

Whichever process needs a value first makes it; the others read theirs. `database_id`
names the database itself: made the first time vidq opens it, it lets a running process
notice that its database was replaced (vidq.db.database), and ties a store's files to
the database that knows them (vidq.jobs.blobs).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from vidq.db.models import ServerSetting, table_of

if TYPE_CHECKING:
    from vidq.db.database import Database

DATABASE_ID = "database_id"

settings = table_of(ServerSetting)


def new_database_id() -> str:
    """A fresh name for a database."""
    return uuid.uuid4().hex


async def value(conn: AsyncConnection, name: str) -> str | None:
    """The value of setting `name`, or None if it has not been made."""
    found = (await conn.execute(select(settings.c.value).where(settings.c.name == name))).scalar()
    return None if found is None else str(found)


async def made_once(db: Database, name: str, make: Callable[[], str]) -> tuple[str, bool]:
    """The value of setting `name`, made with `make()` if it has none; True if made by this call."""
    async with db.read() as conn:
        found = await value(conn, name)
    if found is not None:
        return found, False
    made = make()
    try:
        async with db.write() as conn:
            await conn.execute(insert(settings).values(name=name, value=made))
    except IntegrityError:
        async with db.read() as conn:  # another process made it first: theirs it is
            theirs = await value(conn, name)
        if theirs is None:
            raise
        return theirs, False
    return made, True

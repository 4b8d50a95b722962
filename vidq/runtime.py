"""What a running vidq process holds: settings, database, storage and the signing secret."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from vidq.config import Settings
from vidq.db.database import Database
from vidq.db.migrate import migrate
from vidq.db.models import Job, ServerSetting, table_of
from vidq.jobs.views import job_view
from vidq.storage import Storage, open_storage

log = logging.getLogger("vidq")

SIGNING_KEY_SETTING = "download_signing_key"


async def shared_secret(db: Database, name: str) -> str:
    """A secret every process of the fleet shares, made once and kept in the database."""
    table = table_of(ServerSetting)
    async with db.read() as conn:
        value = (await conn.execute(select(table.c.value).where(table.c.name == name))).scalar()
    if value is not None:
        return str(value)
    try:
        async with db.write() as conn:
            await conn.execute(insert(table).values(name=name, value=secrets.token_urlsafe(32)))
    except IntegrityError:
        pass  # another process made it first; read theirs
    async with db.read() as conn:
        return str(
            (await conn.execute(select(table.c.value).where(table.c.name == name))).scalar_one()
        )


@dataclass
class Runtime:
    """The shared pieces of one process, opened once at start and closed at exit."""

    settings: Settings
    db: Database
    storage: Storage
    signing_key: str
    # Set when a job is queued, so in-process workers start at once instead of polling.
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when notifications are written, so the notifier delivers them without waiting to poll.
    notify_wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        """Migrate the database and open everything."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url
        await migrate(url)
        db = Database(url)
        storage = open_storage(settings.resolved_storage_url)
        signing_key = settings.secret_key or await shared_secret(db, SIGNING_KEY_SETTING)
        return cls(settings=settings, db=db, storage=storage, signing_key=signing_key)

    async def close(self) -> None:
        await self.db.close()

    @property
    def public_url(self) -> str:
        """Base URL for links made outside a request (notifications)."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return f"http://{self.settings.host}:{self.settings.port}"

    def base_url_for(self, request_base_url: str) -> str:
        """Base URL for links in an answer: VIDQ_PUBLIC_URL, else the request's own."""
        return (
            self.settings.public_url.rstrip("/")
            if self.settings.public_url
            else request_base_url.rstrip("/")
        )

    def notification_payload(self, job: Job) -> dict[str, Any]:
        """The Job document sent in notifications about `job`."""
        return job_view(job, base_url=self.public_url, secret=self.signing_key)

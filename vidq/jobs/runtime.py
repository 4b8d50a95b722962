"""What a running vidq process holds for its job operations: settings, database, storage,
the signing secret, the notification payload builder, and the wake-ups between them.

`vidq.service.running_service` opens it and starts the loops that use it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field

from vidq import datadir
from vidq.config import Settings
from vidq.db import server_settings
from vidq.db.database import Database, sqlite_files
from vidq.db.listen import (
    FINISHED_CHANNEL,
    QUEUED_CHANNEL,
    STOP_CHANNEL,
    listen_forever,
    notify,
)
from vidq.db.migrate import migrate
from vidq.jobs import blobs
from vidq.jobs.chunk_sink import FileDigests
from vidq.jobs.events import JobEvents
from vidq.jobs.views import NotificationPayloads
from vidq.storage import Storage, open_storage

log = logging.getLogger("vidq")

SIGNING_KEY_SETTING = "download_signing_key"
STORE_OF_ANOTHER_DATABASE = (
    "the file store is marked as database %s's, not this one's (%s): files no job owns are "
    "not removed from it. If the store's database was lost, restore it from a backup; if "
    "this database should own every file in the store, delete the store's `database-id` "
    "and restart; otherwise point VIDQ_DATABASE_URL and VIDQ_STORAGE_URL at a matching pair"
)


async def shared_secret(db: Database, name: str) -> str:
    """A secret every process of the fleet shares, made once and kept in the database."""
    secret, _ = await server_settings.made_once(db, name, lambda: secrets.token_urlsafe(32))
    return secret


def public_url(settings: Settings) -> str:
    """Base URL for links made outside a request (notifications)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"http://{settings.host}:{settings.port}"


@dataclass
class Runtime:
    """The shared pieces of one process, opened once at start and closed at exit."""

    settings: Settings
    db: Database
    storage: Storage
    signing_key: str
    # Builds what notifications of a job's end carry (made once: key and public URL).
    payloads: NotificationPayloads
    # Set when a job is queued, so in-process workers start at once instead of polling.
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when notifications are written, so the notifier delivers them without waiting to poll.
    notify_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # Requests waiting for a job's end (GET /job/{id}?wait=N).
    job_events: JobEvents = field(default_factory=JobEvents)
    # The running SHA-256 of resumable uploads this process received (vidq.jobs.chunk_sink).
    upload_digests: FileDigests = field(default_factory=FileDigests)
    _listener: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        """Migrate the database and open everything; the data directory private, the store
        marked with the database's id if it has no mark."""
        url = settings.resolved_database_url
        datadir.secure(settings.data_dir, also=sqlite_files(url))
        settings.tmp_dir.mkdir(mode=datadir.DIR_MODE, exist_ok=True)
        await migrate(url)
        db = Database(url)
        database_id, _ = await db.adopt_id()
        storage = open_storage(
            settings.resolved_storage_url,
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_region=settings.s3_region,
        )
        try:
            marked = await blobs.mark_database(storage, database_id)
        except Exception as exc:  # the store may be down for now: the janitor marks it later
            log.warning("cannot check the file store's database mark now (%r)", exc)
        else:
            if marked != database_id:
                log.error(STORE_OF_ANOTHER_DATABASE, marked, database_id)
        signing_key = settings.secret_key or await shared_secret(db, SIGNING_KEY_SETTING)
        return cls(
            settings=settings,
            db=db,
            storage=storage,
            signing_key=signing_key,
            payloads=NotificationPayloads(signing_key, public_url(settings)),
        )

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self.db.close()

    def start_listening(self) -> None:
        """On PostgreSQL, hear other processes' announcements (LISTEN/NOTIFY)."""
        if self.db.is_postgres and self._listener is None:
            self._listener = asyncio.create_task(
                listen_forever(self.settings.resolved_database_url, self._heard), name="pg-listen"
            )

    def _heard(self, channel: str, payload: str) -> None:
        if channel == QUEUED_CHANNEL:
            self.wakeup.set()
        elif channel == FINISHED_CHANNEL:
            self.job_events.finished(payload)
            self.notify_wakeup.set()
        elif channel == STOP_CHANNEL:
            self.job_events.stop(payload)

    async def announce_queued(self) -> None:
        """A job was queued: wake this process's workers, and the fleet's."""
        self.wakeup.set()
        if self.db.is_postgres:
            async with self.db.write() as conn:
                await notify(conn, QUEUED_CHANNEL)

    async def announce_stop(self, job_id: str) -> None:
        """A running job was cancelled or deleted: its worker, here or in the fleet, stops now
        instead of at its next heartbeat."""
        self.job_events.stop(job_id)
        if self.db.is_postgres:
            async with self.db.write() as conn:
                await notify(conn, STOP_CHANNEL, job_id)

    async def announce_finished(self, job_id: str) -> None:
        """A job ended: wake its waiters and the notifier, here and across the fleet."""
        self.job_events.finished(job_id)
        self.notify_wakeup.set()
        if self.db.is_postgres:
            async with self.db.write() as conn:
                await notify(conn, FINISHED_CHANNEL, job_id)

    def base_url_for(self, request_base_url: str) -> str:
        """Base URL for links in an answer: VIDQ_PUBLIC_URL, else the request's own."""
        return (
            self.settings.public_url.rstrip("/")
            if self.settings.public_url
            else request_base_url.rstrip("/")
        )

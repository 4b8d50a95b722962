"""What a running vidq process holds for its job operations: settings, database, storage,
the signing secret, the notification payload builder, and the wake-ups between them.

`vidq.service.running_service` opens it and starts the loops that use it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vidq import datadir
from vidq.config import Settings
from vidq.db import server_settings
from vidq.db.database import Database, sqlite_files
from vidq.db.listen import (
    CHANGED_CHANNEL,
    FINISHED_CHANNEL,
    LISTENING,
    QUEUED_CHANNEL,
    STOP_CHANNEL,
    listen_forever,
    notify,
)
from vidq.db.migrate import migrate
from vidq.db.models import Job
from vidq.faults import retry_transient
from vidq.jobs import blobs, reads
from vidq.jobs.events import JobEvents
from vidq.jobs.feeds import Feeds
from vidq.jobs.subscriptions import JobChange
from vidq.jobs.upload_digests import FileDigests
from vidq.jobs.views import NotificationPayloads, render_jobs
from vidq.storage import Storage, open_storage

log = logging.getLogger("vidq")

SIGNING_KEY_SETTING = "download_signing_key"
# How long a process waits at start to check the store's database mark (see `open`).
MARK_CHECK_SECONDS = 10.0
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
    # The running SHA-256 of resumable uploads this process received (vidq.jobs.upload_digests).
    upload_digests: FileDigests = field(default_factory=FileDigests)
    # Live updates (GET /job/{id}/events, GET /jobs/events); made in `__post_init__`.
    feeds: Feeds = field(init=False)
    # Names this process in its NOTIFY payloads, so that it skips its own.
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)
    _listener: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        # PostgreSQL tells every process of each change; SQLite cannot, so there feeds
        # also re-read now and then (another process may share the file).
        recheck = None if self.db.is_postgres else self.settings.events_recheck_seconds
        self.feeds = Feeds(self._render, self._unfinished_ids, recheck_seconds=recheck)

    async def render(self, job: Job, *, base_url: str) -> dict[str, Any]:
        """The Job document of `job`, its links signed with this process's key."""
        (document,) = await self.render_page([job], base_url=base_url)
        return document

    async def render_page(self, jobs: Sequence[Job], *, base_url: str) -> list[dict[str, Any]]:
        """The Job documents of `jobs`, in order, read together (GET /jobs)."""
        return await render_jobs(
            self.db,
            jobs,
            base_url=base_url,
            secret=self.signing_key,
            fair_share=self.settings.fair_share,
        )

    async def _render(self, job_id: str, owner_id: str, base_url: str) -> dict[str, Any]:
        return await self.render(await reads.get(self.db, job_id, owner_id), base_url=base_url)

    async def _unfinished_ids(self, owner_id: str) -> list[str]:
        return await reads.unfinished_ids(self.db, owner_id)

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        """Migrate the database and open everything; the data directory private, the store
        marked with the database's id if it has no mark. A database that does not answer at
        first (restarting, failing over) is waited for, up to VIDQ_TRANSIENT_RETRY_SECONDS."""
        url = settings.resolved_database_url
        datadir.secure(settings.data_dir, also=sqlite_files(url))
        settings.tmp_dir.mkdir(mode=datadir.DIR_MODE, exist_ok=True)

        async def open_database() -> tuple[Database, str, str]:
            await migrate(url)
            db = Database(url)
            try:
                database_id, _ = await db.adopt_id()
                key = settings.secret_key or await shared_secret(db, SIGNING_KEY_SETTING)
            except BaseException:
                await db.close()
                raise
            return db, database_id, key

        db, database_id, signing_key = await retry_transient(
            open_database, budget_seconds=settings.transient_retry_seconds, what="the database"
        )
        storage = open_storage(
            settings.resolved_storage_url,
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_region=settings.s3_region,
            retry_seconds=settings.transient_retry_seconds,
        )
        try:
            # Not waited on for long: a worker must start while a bucket is away.
            async with asyncio.timeout(MARK_CHECK_SECONDS):
                marked = await blobs.mark_database(storage, database_id)
        except Exception as exc:  # the store may be down for now: the janitor marks it later
            log.warning("cannot check the file store's database mark now (%r)", exc)
        else:
            if marked != database_id:
                log.error(STORE_OF_ANOTHER_DATABASE, marked, database_id)
        return cls(
            settings=settings,
            db=db,
            storage=storage,
            signing_key=signing_key,
            payloads=NotificationPayloads(signing_key, public_url(settings)),
        )

    async def close(self) -> None:
        await self.feeds.close()
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
        elif channel == CHANGED_CHANNEL:
            change = _parse_change(payload, skip_from=self.instance)
            if change is not None:
                self.feeds.changed(change)
        elif channel == LISTENING:  # whatever was said while nobody listened was missed
            self.wakeup.set()
            self.notify_wakeup.set()
            self.feeds.resync()

    async def _notify(self, notices: list[tuple[str, str]]) -> None:
        """Send NOTIFYs on PostgreSQL (one transaction); nothing on SQLite. Best effort: a
        NOTIFY that cannot be sent (the database away for a moment) is logged, never raised,
        since what it announces is already written: workers also poll, waiters re-read, and
        feeds re-read when their LISTEN connection is back."""
        if not (self.db.is_postgres and notices):
            return
        try:
            async with self.db.write() as conn:
                for channel, payload in notices:
                    await notify(conn, channel, payload)
        except Exception as exc:
            log.warning("cannot announce to the fleet (%r)", exc)

    def _changes(self, changes: tuple[JobChange, ...]) -> list[tuple[str, str]]:
        """Tell this process's feeds; the NOTIFYs that tell the fleet's."""
        for change in changes:
            self.feeds.changed(change)
        return [(CHANGED_CHANNEL, _change_payload(change, self.instance)) for change in changes]

    async def announce_queued(self, *changes: JobChange) -> None:
        """A job was queued (or returned to the queue): wake this process's workers, and the
        fleet's; `changes` go to the live feeds."""
        self.wakeup.set()
        await self._notify([(QUEUED_CHANNEL, ""), *self._changes(changes)])

    async def announce_stop(self, job_id: str) -> None:
        """A running job was cancelled or deleted: its worker, here or in the fleet, stops now
        instead of at its next heartbeat."""
        self.job_events.stop(job_id)
        await self._notify([(STOP_CHANNEL, job_id)])

    async def announce_finished(self, job_id: str, *changes: JobChange) -> None:
        """A job ended: wake its waiters and the notifier, here and across the fleet."""
        self.job_events.finished(job_id)
        self.notify_wakeup.set()
        await self._notify([(FINISHED_CHANNEL, job_id), *self._changes(changes)])

    async def announce_changed(self, *changes: JobChange) -> None:
        """Something clients see of these jobs changed (a claim, progress, a deletion): the
        live feeds here and across the fleet read them again."""
        await self._notify(self._changes(changes))

    def base_url_for(self, request_base_url: str) -> str:
        """Base URL for links in an answer: VIDQ_PUBLIC_URL, else the request's own."""
        return (
            self.settings.public_url.rstrip("/")
            if self.settings.public_url
            else request_base_url.rstrip("/")
        )


def _change_payload(change: JobChange, instance: str) -> str:
    return json.dumps(
        {
            "job_id": change.job_id,
            "owner_id": change.owner_id,
            "queue_moved": change.queue_moved,
            "from": instance,
        }
    )


def _parse_change(payload: str, *, skip_from: str) -> JobChange | None:
    """The change a NOTIFY payload names; None for this process's own, or one unreadable."""
    try:
        data = json.loads(payload)
        if data.get("from") == skip_from:
            return None
        owner = data.get("owner_id")
        return JobChange(
            job_id=str(data["job_id"]),
            owner_id=None if owner is None else str(owner),
            queue_moved=bool(data.get("queue_moved")),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("ignoring an unreadable job change notification: %.200r", payload)
        return None

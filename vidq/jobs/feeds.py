"""Live feeds of jobs (GET /job/{id}/events, GET /jobs/events): events fan out, queries do not.

A process keeps one `JobFeed` per watched job (and base URL, which the links in a Job
depend on) and one `OwnerFeed` per owner whose list is watched. A feed re-reads its job
only when told the job changed (`Feeds.changed`: by this process, or by another one
through PostgreSQL NOTIFY), renders it once, and hands the same event to every client
following it. So a thousand clients on one job cost the database what one does; a new
client of a job someone already follows gets its first event from memory.

A job's progress is sent at most once a second (`PROGRESS_EVENT_SECONDS`); any other
change (status, queue place) at once. On SQLite there is no NOTIFY between processes, so
feeds there also re-read their job every `recheck_seconds`: a change made by another
process sharing the database file is seen within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from vidq.errors import NotFound
from vidq.jobs.states import JobStatus
from vidq.jobs.subscriptions import FeedEvent, JobChange, Subscription
from vidq.jobs.views import etag

log = logging.getLogger("vidq.feeds")

PROGRESS_EVENT_SECONDS = 1.0
# Pause before re-reading after a failed read (the database may be restarting).
RETRY_SECONDS = 1.0

# Renders the Job document of (job_id, owner_id, base_url); NotFound if there is none.
Render = Callable[[str, str, str], Awaitable[dict[str, Any]]]
# The ids of an owner's unfinished jobs, oldest first.
UnfinishedIds = Callable[[str], Awaitable[list[str]]]


class _Listener(Protocol):
    def deliver(self, event: FeedEvent) -> None: ...
    def feed_ended(self, feed: JobFeed) -> None: ...


class JobFeed:
    """One watched job: re-read on each change and sent to every listener."""

    def __init__(self, feeds: Feeds, job_id: str, owner_id: str, base_url: str) -> None:
        self.feeds = feeds
        self.key = (job_id, owner_id, base_url)
        self.job_id = job_id
        self.listeners: set[_Listener] = set()
        self.latest: FeedEvent | None = None  # the last event sent
        self.ready = asyncio.Event()  # the first read is done
        self.error: Exception | None = None  # why the first read failed
        self.ended = False
        self._poked = asyncio.Event()
        self._poked.set()
        self._task = asyncio.create_task(self._run(), name=f"feed-{job_id}")

    @property
    def queued(self) -> bool:
        document = self.latest.document if self.latest else None
        return document is not None and document["status"] == JobStatus.QUEUED

    def poke(self) -> None:
        """The job may have changed: read it again."""
        self._poked.set()

    async def _wait_poke(self, seconds: float | None) -> bool:
        """True if poked within `seconds` (None: no limit), else False."""
        try:
            async with asyncio.timeout(seconds):
                await self._poked.wait()
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        job_id, owner_id, base_url = self.key
        held: FeedEvent | None = None  # a progress change waiting for its second to pass
        sent_at = -math.inf
        while True:
            if held is not None:
                wait: float | None = max(0.0, sent_at + PROGRESS_EVENT_SECONDS - time.monotonic())
            else:
                wait = self.feeds.recheck_seconds
            if not await self._wait_poke(wait) and held is not None:
                self._send(held)
                held, sent_at = None, time.monotonic()
                continue
            self._poked.clear()
            try:
                document = await self.feeds.render(job_id, owner_id, base_url)
            except NotFound:
                self._end(FeedEvent("deleted", job_id))
                return
            except Exception as exc:
                if self.latest is None:  # nothing to show yet: the waiting clients hear why
                    self._fail(exc)
                    return
                log.warning("live feed of job %s: cannot read it; retrying", job_id, exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)
                self._poked.set()
                continue
            event = FeedEvent("job", job_id, document, etag(document))
            if self.latest is not None and event.etag == self.latest.etag:
                held = None
                continue
            if event.finished:
                self._end(event)
                return
            if self._progress_only(event) and time.monotonic() - sent_at < PROGRESS_EVENT_SECONDS:
                held = event
                continue
            self._send(event)
            held, sent_at = None, time.monotonic()

    def _progress_only(self, event: FeedEvent) -> bool:
        """Whether the job's status and queue place are those last sent."""
        if self.latest is None or self.latest.document is None or event.document is None:
            return False
        before, now = self.latest.document, event.document
        return bool(
            before["status"] == now["status"] and before["queue_position"] == now["queue_position"]
        )

    def _send(self, event: FeedEvent) -> None:
        self.latest = event
        self.ready.set()
        for listener in list(self.listeners):
            listener.deliver(event)

    def _end(self, event: FeedEvent) -> None:
        """Send the last event (the job finished or is gone) and leave the process's feeds."""
        self._send(event)
        self._leave()

    def _fail(self, error: Exception) -> None:
        """The first read failed: those waiting for it raise `error`; the feed ends."""
        self.error = error
        self.ready.set()
        self._leave()

    def _leave(self) -> None:
        self.ended = True
        self.feeds._forget(self)
        for listener in list(self.listeners):
            listener.feed_ended(self)
        self.listeners.clear()

    def remove(self, listener: _Listener) -> None:
        self.listeners.discard(listener)
        if not self.listeners and not self.ended:
            self.ended = True
            self.feeds._forget(self)
            self._task.cancel()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class _JobSubscription(Subscription):
    """A client of one job: its events end with the job's."""

    def feed_ended(self, feed: JobFeed) -> None:
        self.end()


class OwnerFeed:
    """Every unfinished job of one owner, and any job of theirs that changes: GET /jobs/events."""

    def __init__(self, feeds: Feeds, owner_id: str, base_url: str) -> None:
        self.feeds = feeds
        self.key = (owner_id, base_url)
        self.owner_id = owner_id
        self.base_url = base_url
        self.subscribers: set[Subscription] = set()
        self.jobs: dict[str, JobFeed] = {}
        self.ready = asyncio.Event()
        self.waiting = 0  # clients waiting for `ready`
        self.ended = False
        self._task = asyncio.create_task(self._run(), name=f"owner-feed-{owner_id}")

    async def _run(self) -> None:
        """Follow the owner's unfinished jobs; on SQLite look for new ones now and then."""
        while True:
            try:
                ids = await self.feeds.unfinished_ids(self.owner_id)
            except Exception:
                log.warning(
                    "live feed of an owner's jobs: cannot list them; retrying", exc_info=True
                )
                await asyncio.sleep(RETRY_SECONDS)
                continue
            for job_id in ids:
                self.follow(job_id)
            if not self.ready.is_set():
                for feed in list(self.jobs.values()):
                    await feed.ready.wait()
                self.ready.set()
            if self.feeds.recheck_seconds is None:
                return
            await asyncio.sleep(self.feeds.recheck_seconds)

    def follow(self, job_id: str) -> None:
        """Follow one of the owner's jobs, if not already."""
        if job_id not in self.jobs and not self.ended:
            feed = self.feeds._job_feed(job_id, self.owner_id, self.base_url)
            feed.listeners.add(self)
            self.jobs[job_id] = feed

    def snapshot(self) -> list[FeedEvent]:
        """The latest event of each followed job, oldest job first."""
        return [feed.latest for feed in self.jobs.values() if feed.latest is not None]

    def deliver(self, event: FeedEvent) -> None:
        for subscriber in list(self.subscribers):
            subscriber.deliver(event)

    def feed_ended(self, feed: JobFeed) -> None:
        if self.jobs.get(feed.job_id) is feed:
            del self.jobs[feed.job_id]

    def remove(self, subscriber: Subscription) -> None:
        self.subscribers.discard(subscriber)
        self.release_if_unused()

    def release_if_unused(self) -> None:
        """Stop following when no client follows or waits to."""
        if not self.subscribers and not self.waiting and not self.ended:
            self.ended = True
            self.feeds._forget_owner(self)
            self._task.cancel()
            for feed in list(self.jobs.values()):
                feed.remove(self)
            self.jobs.clear()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class Feeds:
    """The live feeds of one process, fed by `changed` and read by event streams."""

    def __init__(
        self, render: Render, unfinished_ids: UnfinishedIds, *, recheck_seconds: float | None
    ) -> None:
        self.render = render
        self.unfinished_ids = unfinished_ids
        self.recheck_seconds = recheck_seconds
        self._jobs: dict[tuple[str, str, str], JobFeed] = {}
        self._by_job: dict[str, set[JobFeed]] = {}
        self._owners: dict[tuple[str, str], OwnerFeed] = {}

    async def follow_job(self, job_id: str, owner_id: str, *, base_url: str) -> Subscription:
        """A subscription whose first event is the job as it is now; NotFound if the
        owner has no such job. It ends after the event of the job's end (or deletion)."""
        feed = self._job_feed(job_id, owner_id, base_url)
        subscription = _JobSubscription(lambda _: feed.remove(subscription))
        # Listening before the first read is done: no change between the two is missed.
        feed.listeners.add(subscription)
        try:
            await feed.ready.wait()
            if feed.error is not None:
                raise feed.error
            latest = feed.latest
            assert latest is not None
            if latest.kind == "deleted":
                raise NotFound(f"No job {job_id}.")
        except BaseException:
            subscription.close()
            raise
        if subscription.empty:  # the feed was ready before: its first event was not sent here
            subscription.deliver(latest)
        return subscription

    async def follow_owner(self, owner_id: str, *, base_url: str) -> Subscription:
        """A subscription whose first events are the owner's unfinished jobs as they are
        now, then every change of any of the owner's jobs."""
        owner = self._owners.get((owner_id, base_url))
        if owner is None:
            owner = self._owners[(owner_id, base_url)] = OwnerFeed(self, owner_id, base_url)
        owner.waiting += 1
        try:
            await owner.ready.wait()
        except BaseException:  # the client left while waiting
            owner.waiting -= 1
            owner.release_if_unused()
            raise
        owner.waiting -= 1
        # Joined after the first reads, so that the snapshot is the first of its events.
        subscription = Subscription(lambda s: owner.remove(s))
        owner.subscribers.add(subscription)
        for event in owner.snapshot():
            subscription.deliver(event)
        return subscription

    def changed(self, change: JobChange) -> None:
        """A job changed: the feeds that show it read it again."""
        for feed in list(self._by_job.get(change.job_id, ())):
            feed.poke()
        if change.queue_moved:
            for feed in list(self._jobs.values()):
                if feed.queued:
                    feed.poke()
        if change.owner_id is not None:
            for owner in list(self._owners.values()):
                if owner.owner_id == change.owner_id:
                    owner.follow(change.job_id)

    def resync(self) -> None:
        """Changes may have been missed (LISTEN reconnected): every feed reads again."""
        for feed in list(self._jobs.values()):
            feed.poke()

    def counts(self) -> dict[str, int]:
        """How many job feeds, owner feeds and clients this process holds."""
        clients = sum(
            1 for feed in self._jobs.values() for x in feed.listeners if isinstance(x, Subscription)
        ) + sum(len(owner.subscribers) for owner in self._owners.values())
        return {"job_feeds": len(self._jobs), "owner_feeds": len(self._owners), "clients": clients}

    async def close(self) -> None:
        """End every stream and stop every feed (at shutdown)."""
        owners, jobs = list(self._owners.values()), list(self._jobs.values())
        for owner in owners:
            for subscriber in list(owner.subscribers):
                subscriber.end()
            await owner.stop()
        for feed in jobs:
            for listener in list(feed.listeners):
                if isinstance(listener, Subscription):
                    listener.end()
            await feed.stop()
        self._owners.clear()
        self._jobs.clear()
        self._by_job.clear()

    def _job_feed(self, job_id: str, owner_id: str, base_url: str) -> JobFeed:
        feed = self._jobs.get((job_id, owner_id, base_url))
        if feed is None:
            feed = JobFeed(self, job_id, owner_id, base_url)
            self._jobs[feed.key] = feed
            self._by_job.setdefault(job_id, set()).add(feed)
        return feed

    def _forget(self, feed: JobFeed) -> None:
        if self._jobs.get(feed.key) is feed:
            del self._jobs[feed.key]
        same_job = self._by_job.get(feed.job_id)
        if same_job is not None:
            same_job.discard(feed)
            if not same_job:
                del self._by_job[feed.job_id]

    def _forget_owner(self, owner: OwnerFeed) -> None:
        if self._owners.get(owner.key) is owner:
            del self._owners[owner.key]

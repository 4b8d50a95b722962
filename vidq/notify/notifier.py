"""The notifier: a loop that delivers due outbox rows by webhook or email, retrying on a schedule.

Every process that runs workers runs one. It leases a batch of due rows (see `outbox`),
makes one attempt at each concurrently, and records the outcome: delivered; retried
after the next delay of `VIDQ_NOTIFY_RETRY_SECONDS` (with a little jitter, and no
sooner than a 429/503 answer's Retry-After); or failed after the last attempt, a 410
answer, or a target that is refused. All state lives in the row, so a restart carries
on where the last process stopped. Between batches it sleeps until the next row comes
due, at most a second, or until woken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from vidq import metrics
from vidq.clock import utcnow
from vidq.config import Settings
from vidq.db.database import Database
from vidq.notify import outbox
from vidq.notify.email import EmailSender, SmtpServer
from vidq.notify.outbox import LeasedNotification
from vidq.notify.outcome import AttemptOutcome, describe
from vidq.notify.webhook import WebhookSender

log = logging.getLogger("vidq.notify")

POLL_SECONDS = 1.0
BATCH_SIZE = 16
# A lease outlives the attempt's timeout by this much, to record its outcome.
LEASE_MARGIN_SECONDS = 5.0
MAX_RETRY_AFTER_SECONDS = 6 * 3600.0
STOP_GRACE_SECONDS = 2.0


class Notifier:
    """Delivers the notification outbox of one database, in the background."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        wakeup: asyncio.Event | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.settings = settings
        self.db = db
        self.wakeup = wakeup if wakeup is not None else asyncio.Event()
        self.poll_seconds = poll_seconds
        self.timeout_seconds = settings.webhook_timeout_seconds
        self.webhooks = WebhookSender(
            timeout_seconds=self.timeout_seconds,
            policy=settings.address_policy,
        )
        self.email: EmailSender | None = None
        if settings.smtp_url:
            self.email = EmailSender(
                SmtpServer.from_url(settings.smtp_url),
                sender=settings.smtp_from,
                timeout_seconds=self.timeout_seconds,
            )
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def lease_seconds(self) -> float:
        """How long a leased row is kept from other notifiers."""
        return self.timeout_seconds + LEASE_MARGIN_SECONDS

    def start(self) -> None:
        """Start the delivery loop as a background task."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="notifier")

    async def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Let attempts in flight finish for up to `grace_seconds`, then cancel them."""
        self._stopping.set()
        self.wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait({task}, timeout=grace_seconds)
            if not task.done():
                task.cancel()  # their rows are retried once their leases run out
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.webhooks.aclose()

    async def run(self) -> None:
        """Deliver due rows until stopped."""
        while not self._stopping.is_set():
            self.wakeup.clear()
            try:
                attempted = await self.deliver_due()
            except Exception:
                log.exception("notification delivery pass failed; trying again shortly")
                attempted = 0
            if attempted < BATCH_SIZE:
                await self._sleep()

    async def deliver_due(self) -> int:
        """Lease the rows that are due and make one attempt at each; returns how many."""
        leased = await outbox.lease_due(self.db, limit=BATCH_SIZE, lease_seconds=self.lease_seconds)
        if leased:
            async with asyncio.TaskGroup() as group:
                for note in leased:
                    group.create_task(self._attempt(note), name=f"notify-{note.id}")
        return len(leased)

    async def _sleep(self) -> None:
        """Until the next row comes due, at most `poll_seconds`; woken early by `wakeup`."""
        seconds = self.poll_seconds
        with contextlib.suppress(Exception):
            due_at: datetime | None = await outbox.next_due_at(self.db)
            if due_at is not None:
                seconds = min(seconds, (due_at - utcnow()).total_seconds())
        if seconds <= 0 or self._stopping.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wakeup.wait()

    async def _attempt(self, note: LeasedNotification) -> None:
        try:
            outcome = await self._deliver(note)
        except Exception as exc:  # a bug must cost one attempt, not the whole batch
            log.exception("notification %s: attempt crashed", note.id)
            outcome = AttemptOutcome.failed(describe(exc))
        try:
            await self._record(note, outcome)
        except Exception:
            log.exception("notification %s: could not record the attempt", note.id)

    async def _deliver(self, note: LeasedNotification) -> AttemptOutcome:
        if note.channel == "webhook":
            if note.webhook_secret is None:
                return AttemptOutcome.failed("the job's owner no longer exists", final=True)
            return await self.webhooks.send(
                note.target, msg_id=note.id, payload=note.payload, secret=note.webhook_secret
            )
        if note.channel == "email":
            if self.email is None:
                return AttemptOutcome.failed("no SMTP server is configured (VIDQ_SMTP_URL)")
            return await self.email.send(note.target, msg_id=note.id, payload=note.payload)
        return AttemptOutcome.failed(f"unknown channel {note.channel!r}", final=True)

    async def _record(self, note: LeasedNotification, outcome: AttemptOutcome) -> None:
        if outcome.delivered:
            kept = await outbox.record_delivered(self.db, note)
            result = "delivered"
        else:
            error = outcome.error or "failed"
            delay = None
            if not outcome.final:
                delay = outbox.retry_delay_seconds(
                    self.settings.retry_schedule_seconds,
                    note.attempts,
                    retry_after_seconds=outcome.retry_after_seconds,
                    max_retry_after=MAX_RETRY_AFTER_SECONDS,
                )
            if delay is None:
                if not outcome.final:
                    error = f"{error} (gave up after {note.attempts} attempts)"
                kept = await outbox.record_failed(self.db, note, error=error)
                result = "failed"
                log.warning(
                    "notification %s (%s, job %s) failed: %s",
                    note.id,
                    note.channel,
                    note.job_id,
                    error,
                )
            else:
                kept = await outbox.record_retry(self.db, note, error=error, delay_seconds=delay)
                result = "retry"
                log.info(
                    "notification %s (%s, job %s) attempt %d failed, retry in %.1f s: %s",
                    note.id,
                    note.channel,
                    note.job_id,
                    note.attempts,
                    delay,
                    error,
                )
        metrics.NOTIFICATIONS.labels(channel=note.channel, outcome=result).inc()
        if not kept:
            log.warning("notification %s: lease lost before its outcome was recorded", note.id)

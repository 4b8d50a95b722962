"""One conversion in progress: its claim, what may stop it, and how far it has come; and
what a worker needs from the process it runs in."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

from vidq.config import Settings
from vidq.db.database import Database
from vidq.jobs.events import JobEvents
from vidq.jobs.queue import Claim
from vidq.jobs.subscriptions import JobChange
from vidq.jobs.views import NotificationPayloads
from vidq.storage import Storage

# The estimate of the time left waits for this much progress and time, to have a rate.
ETA_MIN_PERCENT = 1.0
ETA_MIN_SECONDS = 2.0


@dataclass
class RunningJob:
    """One conversion in progress and the reasons it may be stopped."""

    claim: Claim
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    progress_percent: float = 0.0
    lost: bool = False  # cancelled, deleted or re-leased: make no more writes
    shutting_down: bool = False  # stopped for shutdown: back to the queue
    started: float = field(default_factory=time.monotonic)  # this attempt's start

    def eta_seconds(self) -> float | None:
        """Seconds left at the progress rate of this attempt so far; None while unknown."""
        percent = self.progress_percent
        elapsed = time.monotonic() - self.started
        if percent < ETA_MIN_PERCENT or elapsed < ETA_MIN_SECONDS or percent >= 100.0:
            return None
        return round(elapsed * (100.0 - percent) / percent, 1)

    def abandon(self) -> None:
        """The job is no longer ours (cancelled, deleted, re-leased): stop ffmpeg now."""
        self.lost = True
        self.stop.set()


class WorkerHost(Protocol):
    """What a worker needs from its process (a `Runtime` is one; a test may build its own)."""

    settings: Settings
    db: Database
    storage: Storage
    payloads: NotificationPayloads
    wakeup: asyncio.Event
    job_events: JobEvents

    async def announce_finished(self, job_id: str, *changes: JobChange) -> None: ...
    async def announce_changed(self, *changes: JobChange) -> None: ...

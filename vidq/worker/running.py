"""One conversion in progress: its claim, what may stop it, and how far it has come."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from vidq.jobs.queue import Claim

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

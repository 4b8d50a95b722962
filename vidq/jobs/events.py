"""In-process wake-ups: a job was queued, a job ended. Fed locally and, on PostgreSQL, by LISTEN."""

from __future__ import annotations

import asyncio
import contextlib


class JobEvents:
    """Lets a request wait for one job's end without polling the database hard."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def finished(self, job_id: str) -> None:
        """Wake everyone waiting on `job_id`."""
        for event in self._waiters.get(job_id, ()):
            event.set()

    async def wait(self, job_id: str, seconds: float) -> None:
        """Return when `job_id` is said to have ended, or after `seconds`."""
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), seconds)
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

"""In-process wake-ups: a job ended, a job must stop. Fed locally and, on PostgreSQL, by LISTEN."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator


class JobEvents:
    """Lets a request wait for one job's end, and a worker hear at once that its job must stop."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._stoppers: dict[str, Callable[[], None]] = {}

    def stop(self, job_id: str) -> None:
        """Tell the worker running `job_id` in this process, if any, to stop it now."""
        stopper = self._stoppers.get(job_id)
        if stopper is not None:
            stopper()

    @contextlib.contextmanager
    def on_stop(self, job_id: str, stopper: Callable[[], None]) -> Iterator[None]:
        """While in the block, `stop(job_id)` calls `stopper`."""
        self._stoppers[job_id] = stopper
        try:
            yield
        finally:
            if self._stoppers.get(job_id) is stopper:
                del self._stoppers[job_id]

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

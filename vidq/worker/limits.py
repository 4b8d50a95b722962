"""When a batch-style worker process has done its work (VIDQ_MAX_JOBS, VIDQ_IDLE_EXIT_SECONDS).

A batch runner (a Kubernetes Job, a CI step, a scale-to-zero autoscaler) wants a worker
that takes a set number of jobs, or works while there is work, and then exits 0. The
process's workers share one `RunLimits`: each takes a place before it claims and gives it
back after, so that `max_jobs` holds across all of them; once the last job allowed has
ended, or no job has run for `idle_exit_seconds`, `done` is set and the process stops.
"""

from __future__ import annotations

import asyncio
import time


class RunLimits:
    """A process's budget of jobs and of idle time. One event loop: no lock needed."""

    def __init__(
        self, *, max_jobs: int | None = None, idle_exit_seconds: float | None = None
    ) -> None:
        self.max_jobs = max_jobs
        self.idle_exit_seconds = idle_exit_seconds
        self.taken = 0  # jobs run or running, counted toward max_jobs
        self.running = 0  # places taken now (claims in flight and jobs running)
        self.idle_since = time.monotonic()
        self.done = asyncio.Event()
        self.reason = ""

    def take(self) -> bool:
        """A place for one more claim; False once `max_jobs` have been taken."""
        if self.max_jobs is not None and self.taken >= self.max_jobs:
            return False
        self.taken += 1
        self.running += 1
        return True

    def give_back(self, *, counted: bool) -> None:
        """The place taken for a claim: it found nothing or handed its job back (`counted`
        False), or its job ran."""
        self.running -= 1
        if counted:
            self.idle_since = time.monotonic()  # a job just ended: idle from now on
        else:
            self.taken -= 1
        if self.running == 0 and self.max_jobs is not None and self.taken >= self.max_jobs:
            self._finish(f"ran {self.taken} job(s) (VIDQ_MAX_JOBS)")

    def _finish(self, reason: str) -> None:
        if not self.done.is_set():
            self.reason = reason
            self.done.set()

    async def watch_idle(self) -> None:
        """Set `done` once no job has run for `idle_exit_seconds` (returns at once without)."""
        idle_exit = self.idle_exit_seconds
        if idle_exit is None:
            return
        while not self.done.is_set():
            await asyncio.sleep(min(1.0, idle_exit / 4))
            if self.running == 0 and time.monotonic() - self.idle_since >= idle_exit:
                self._finish(f"no job for {idle_exit:g} s (VIDQ_IDLE_EXIT_SECONDS)")

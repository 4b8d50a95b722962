"""Wake-ups across processes of a fleet: PostgreSQL LISTEN/NOTIFY between two runtimes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from vidq.jobs.runtime import Runtime

from .conftest import make_settings


async def test_announcements_reach_another_process(tmp_path: Path, postgres_url: str) -> None:
    api = await Runtime.open(make_settings(tmp_path / "api", database_url=postgres_url))
    worker = await Runtime.open(make_settings(tmp_path / "worker", database_url=postgres_url))
    try:
        worker.start_listening()
        await asyncio.sleep(0.5)  # let LISTEN take effect
        worker.wakeup.clear()
        worker.notify_wakeup.clear()

        await api.announce_queued()
        await asyncio.wait_for(worker.wakeup.wait(), 5)

        waiting = asyncio.create_task(worker.job_events.wait("job-1", 10))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await api.announce_finished("job-1")
        await waiting
        assert time.monotonic() - started < 5, "the waiter was woken, not timed out"
        assert worker.notify_wakeup.is_set()

        # A cancel or delete in one process stops the job where it runs, in another.
        stopped = asyncio.Event()
        with worker.job_events.on_stop("job-2", stopped.set):
            await api.announce_stop("job-1")  # another job: not this one's stopper
            await api.announce_stop("job-2")
            await asyncio.wait_for(stopped.wait(), 5)
    finally:
        await api.close()
        await worker.close()

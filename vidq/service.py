"""One lifecycle for every vidq process: open what it needs, start its loops, stop them in order.

`vidq serve` runs the API with workers, `vidq api` the API alone, `vidq worker` the workers
alone; each enters `running_service` and leaves it at shutdown. Loops stop in the reverse
order of their start: workers first (their jobs finish or go back to the queue), then the
notifier, then the database, then the warm probe child.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from vidq.config import Settings
from vidq.errors import DatabaseReplaced
from vidq.exporter import MetricsExporter
from vidq.jobs.runtime import Runtime
from vidq.jobs.service import refresh_queue_metrics
from vidq.media.probe import close_prober
from vidq.notify.notifier import Notifier
from vidq.worker.limits import RunLimits
from vidq.worker.pool import WorkerPool

log = logging.getLogger("vidq")


@dataclass(frozen=True)
class Service:
    """What a running process runs: its runtime, and its workers and notifier if it has them."""

    runtime: Runtime
    pool: WorkerPool | None
    notifier: Notifier | None

    async def unready_reason(self) -> str | None:
        """Why this process cannot do its work now, or None when it can."""
        try:
            await self.runtime.db.ping()
        except DatabaseReplaced as exc:
            return exc.detail
        except Exception as exc:
            return f"the database does not answer ({type(exc).__name__})"
        try:
            await self.runtime.storage.ping()
        except Exception as exc:
            return f"the storage does not answer ({type(exc).__name__})"
        if self.pool is not None and self.pool.alive() == 0:
            return "no conversion worker is running"
        return None


@asynccontextmanager
async def running_service(
    settings: Settings, *, workers: int, notify: bool, batch: bool = False
) -> AsyncIterator[Service]:
    """Open the runtime; run `workers` conversion workers, and the notifier if `notify`;
    with `batch` (`vidq worker`), the workers honour VIDQ_MAX_JOBS and
    VIDQ_IDLE_EXIT_SECONDS (`Service.pool.finished`). With VIDQ_METRICS_PORT, metrics are
    served on that port too."""
    if settings.webhook_allow_private:
        log.warning(
            "VIDQ_WEBHOOK_ALLOW_PRIVATE is on: webhooks may reach loopback and private addresses"
        )
    async with AsyncExitStack() as stack:
        stack.callback(close_prober)  # the warm spare probe child
        runtime = await Runtime.open(settings)
        stack.push_async_callback(runtime.close)
        runtime.start_listening()
        pool: WorkerPool | None = None
        notifier: Notifier | None = None
        if notify:
            # Made before any loop starts: a bad VIDQ_SMTP_URL stops the start cleanly.
            notifier = Notifier(settings, runtime.db, wakeup=runtime.notify_wakeup)
            stack.push_async_callback(notifier.stop)
        if settings.metrics_port is not None:
            exporter = MetricsExporter(
                settings.host,
                settings.metrics_port,
                refresh=lambda: refresh_queue_metrics(runtime),
                loop=asyncio.get_running_loop(),
            )
            exporter.start()
            stack.callback(exporter.stop)
        if workers > 0:
            limits = None
            if batch:
                limits = RunLimits(
                    max_jobs=settings.max_jobs, idle_exit_seconds=settings.idle_exit_seconds
                )
            pool = WorkerPool(runtime, workers, limits)
            await pool.start()
            stack.push_async_callback(pool.stop, settings.shutdown_grace_seconds)
        if notifier is not None:
            notifier.start()
        yield Service(runtime=runtime, pool=pool, notifier=notifier)

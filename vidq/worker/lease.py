"""A running job's lease: renewed by a heartbeat that also records progress, and renewed once
more before the output is stored. A renewal that matches nothing means the job is no longer
this worker's (cancelled, deleted, or leased to another after this one was cut off): its
ffmpeg is stopped and nothing more is written."""

from __future__ import annotations

import asyncio
import logging

from vidq.faults import describe, is_transient, retry_transient
from vidq.jobs import queue
from vidq.jobs.subscriptions import JobChange
from vidq.worker.running import RunningJob, WorkerHost

log = logging.getLogger("vidq.worker")


async def keep_leased(host: WorkerHost, running: RunningJob) -> None:
    """Every `heartbeat_seconds`: record progress and renew the lease, until the job is
    found no longer ours (then abandon it). A failed beat is tried again at the next."""
    settings = host.settings
    job = running.claim.job
    recorded: tuple[float, float | None] | None = None
    while True:
        await asyncio.sleep(settings.heartbeat_seconds)
        progress = (running.progress_percent, running.eta_seconds())
        try:
            ours = await queue.heartbeat(
                host.db,
                running.claim,
                progress_percent=progress[0],
                eta_seconds=progress[1],
                lease_seconds=settings.lease_seconds,
            )
            if ours and progress != recorded:
                recorded = progress
                await host.announce_changed(JobChange(job.id, job.owner_id))
        except Exception as exc:
            log.warning(
                "job %s: heartbeat failed (%s); will retry",
                job.id,
                describe(exc),
                exc_info=None if is_transient(exc) else exc,  # a passing fault: one line
            )
            continue
        if not ours:
            log.info("job %s: no longer ours (cancelled, deleted or re-leased); stopping", job.id)
            running.abandon()
            return


async def still_ours(host: WorkerHost, running: RunningJob) -> bool:
    """Renew the lease now (through a passing fault); False, and the job abandoned, if it is
    no longer ours."""
    settings = host.settings
    ours = await retry_transient(
        lambda: queue.heartbeat(
            host.db, running.claim, progress_percent=None, lease_seconds=settings.lease_seconds
        ),
        budget_seconds=settings.transient_retry_seconds,
        what="the database",
    )
    if not ours:
        running.abandon()
    return ours

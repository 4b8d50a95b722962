"""The worker: claim the oldest job, run ffmpeg under a lease, watch for cancel, finish.

Each running job has a heartbeat task beside its ffmpeg: it records progress, renews
the lease and learns whether the job is still ours. If the job was cancelled, deleted
or re-leased, the heartbeat's conditional update matches nothing and ffmpeg is stopped.
A job whose input is still at its `source_url` first has it fetched and probed
(`importer`), under the same lease and stopped the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from vidq import datadir, metrics
from vidq.config import Settings
from vidq.db.database import Database
from vidq.errors import UnsupportedMedia
from vidq.jobs import blobs, queue
from vidq.jobs.events import JobEvents
from vidq.jobs.options import ResolvedOptions, output_extension
from vidq.jobs.package_zip import store_package_zip
from vidq.jobs.queue import Claim
from vidq.jobs.subscriptions import JobChange
from vidq.jobs.views import NotificationPayloads
from vidq.media.command import job_timeout_seconds
from vidq.media.ffmpeg import FFmpegResult, describe_failure, run_ffmpeg
from vidq.media.info import MediaInfo
from vidq.storage import Storage
from vidq.worker.importer import InputRefused, import_unless_stopped
from vidq.worker.outputs import MadeFile, OutputPlan, Step, describe_result, plan_outputs

log = logging.getLogger("vidq.worker")

OUTPUT_STEM_MAX = 200
# The longest pause between tries while the worker's loop keeps failing.
MAX_BACKOFF_SECONDS = 30.0


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


class Outcome(StrEnum):
    """How one claimed job ended for this worker."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # cancelled, deleted or re-leased while it ran: not ours to end
    REQUEUED = "requeued"  # handed back to the queue at shutdown


def output_filename(input_filename: str, extension: str) -> str:
    """The download's name: the input's name with the new extension."""
    stem = input_filename.rsplit(".", 1)[0] if "." in input_filename[1:] else input_filename
    return f"{stem[:OUTPUT_STEM_MAX] or 'output'}.{extension}"


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


class Worker:
    """One conversion slot: claims and runs jobs one at a time until told to stop."""

    def __init__(self, runtime: WorkerHost, worker_id: str) -> None:
        self.runtime = runtime
        self.worker_id = worker_id
        self.current: RunningJob | None = None
        self.scratch: Path | None = None  # the running job's temporary directory
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        """Claim and process jobs until `stopping` is set. No error ends the loop: a failing
        database, store or prober is logged and retried with a growing pause."""
        settings = self.runtime.settings
        failures = 0
        while not self.stopping.is_set():
            try:
                claim = await queue.claim_next(
                    self.runtime.db, worker_id=self.worker_id, lease_seconds=settings.lease_seconds
                )
                if claim is None:
                    await self._idle(settings.poll_seconds)
                else:
                    await self.process(claim)
                failures = 0
            except Exception:
                failures += 1
                pause = min(MAX_BACKOFF_SECONDS, settings.poll_seconds * 2 ** min(failures, 16))
                log.exception(
                    "worker %s: error in its loop (%d in a row); going on in %.1f s",
                    self.worker_id,
                    failures,
                    pause,
                )
                await self._pause(pause)

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less if told to stop (new jobs do not cut it short)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopping.wait()

    async def _idle(self, seconds: float) -> None:
        wakeup = self.runtime.wakeup
        stopping = asyncio.create_task(self.stopping.wait())
        woken = asyncio.create_task(wakeup.wait())
        try:
            await asyncio.wait(
                {stopping, woken}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopping.cancel()
            woken.cancel()
        wakeup.clear()

    def stop_current(self, *, shutting_down: bool) -> None:
        """Stop the running conversion (at shutdown it goes back to the queue)."""
        if self.current is not None:
            self.current.shutting_down = shutting_down
            self.current.stop.set()

    async def process(self, claim: Claim) -> Outcome:
        """Run one claimed job to its end, whatever happens."""
        job = claim.job
        running = RunningJob(claim)
        self.current = running
        scratch = self.runtime.settings.tmp_dir / f"{job.id}-{claim.lease_token[:8]}"
        self.scratch = scratch
        started = time.monotonic()
        heartbeat = asyncio.create_task(self._heartbeat(running), name=f"heartbeat-{job.id}")
        metrics.CONVERSIONS_RUNNING.inc()
        outcome = Outcome.FAILED
        try:
            # It left the queue: its clients see it running, the jobs behind it move up.
            await self.runtime.announce_changed(JobChange(job.id, job.owner_id, queue_moved=True))
            # A cancel or delete in this process (or, on PostgreSQL, anywhere in the fleet)
            # stops ffmpeg at once; the heartbeat would notice too, but only at its next beat.
            with self.runtime.job_events.on_stop(job.id, running.abandon):
                outcome = await self._convert(running, scratch)
        except Exception as exc:
            log.exception("job %s: unexpected error", job.id)
            if not running.lost:
                message = f"Internal error while converting ({type(exc).__name__})."
                outcome = await self._fail(claim, "transcode_failed", message)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            shutil.rmtree(scratch, ignore_errors=True)
            self.scratch = None
            metrics.CONVERSIONS_RUNNING.dec()
            metrics.PROCESSING_SECONDS.labels(status=outcome.value).observe(
                time.monotonic() - started
            )
            self.current = None
        if outcome in (Outcome.COMPLETED, Outcome.FAILED):
            await self.runtime.announce_finished(job.id, JobChange(job.id, job.owner_id))
        elif outcome == Outcome.REQUEUED:
            await self.runtime.announce_changed(JobChange(job.id, job.owner_id, queue_moved=True))
        if outcome != Outcome.REQUEUED:
            # The input is no longer needed once the job has ended.
            await blobs.delete_input(self.runtime.storage, job.id)
        return outcome

    async def _fail(self, claim: Claim, code: str, message: str) -> Outcome:
        """End a leased job as failed (a no-op if the lease was lost meanwhile)."""
        await queue.fail(
            self.runtime.db, claim, code=code, message=message, payloads=self.runtime.payloads
        )
        return Outcome.FAILED

    async def _heartbeat(self, running: RunningJob) -> None:
        settings = self.runtime.settings
        job = running.claim.job
        recorded: tuple[float, float | None] | None = None
        while True:
            await asyncio.sleep(settings.heartbeat_seconds)
            progress = (running.progress_percent, running.eta_seconds())
            try:
                ours = await queue.heartbeat(
                    self.runtime.db,
                    running.claim,
                    progress_percent=progress[0],
                    eta_seconds=progress[1],
                    lease_seconds=settings.lease_seconds,
                )
                if ours and progress != recorded:
                    recorded = progress
                    await self.runtime.announce_changed(JobChange(job.id, job.owner_id))
            except Exception:
                log.warning(
                    "job %s: heartbeat failed; will retry", running.claim.job.id, exc_info=True
                )
                continue
            if not ours:
                log.info(
                    "job %s: no longer ours (cancelled, deleted or re-leased); stopping",
                    running.claim.job.id,
                )
                running.abandon()
                return

    async def _import(self, running: RunningJob, scratch: Path) -> Outcome | None:
        """Fetch and probe the input of a `source_url` job; None when it is ready to convert,
        else how the job ended (a cancel, delete or shutdown stops the import at once)."""
        claim = running.claim
        try:
            job = await import_unless_stopped(self.runtime, claim, scratch, running.stop)
        except InputRefused as exc:
            if not running.stop.is_set():
                return await self._fail(claim, exc.code, exc.message)
            job = None
        if running.shutting_down and not running.lost:
            await queue.requeue(self.runtime.db, claim, count_attempt=False)
            return Outcome.REQUEUED
        if job is None or running.lost:
            return Outcome.CANCELLED
        running.claim = dataclasses.replace(claim, job=job)
        # Its input is known now: clients following it see it filled in.
        await self.runtime.announce_changed(JobChange(job.id, job.owner_id))
        return None

    async def _convert(self, running: RunningJob, scratch: Path) -> Outcome:
        """Run the job's ffmpeg steps (see `outputs`), then conclude."""
        runtime, settings = self.runtime, self.runtime.settings
        scratch.mkdir(mode=datadir.DIR_MODE, parents=True, exist_ok=True)
        if running.claim.job.input_info is None:
            ended = await self._import(running, scratch)
            if ended is not None:
                return ended
        job = running.claim.job
        assert job.input_info is not None and job.input_size_bytes is not None
        options = ResolvedOptions(**job.options)
        info = MediaInfo.from_json(job.input_info)
        main_name = output_filename(job.input_filename, output_extension(options))
        async with runtime.storage.local_copy(blobs.input_key(job.id), scratch) as input_path:
            plan = plan_outputs(options, info, input_path, scratch, settings, main_name=main_name)
            total_weight = sum(step.weight for step in plan.steps)
            done_weight = 0.0
            result: FFmpegResult | None = None
            for step in plan.steps:

                def on_progress(
                    seconds: float, step: Step = step, before: float = done_weight
                ) -> None:
                    share = min(1.0, seconds / step.output_seconds) if step.output_seconds else 0.0
                    percent = 100.0 * (before + share * step.weight) / total_weight
                    running.progress_percent = max(0.0, min(99.9, percent))

                for argv in (step.argv, step.fallback):
                    if argv is None:
                        continue
                    result = await run_ffmpeg(
                        argv,
                        settings=settings,
                        on_progress=on_progress,
                        stop=running.stop,
                        timeout_seconds=job_timeout_seconds(info, settings),
                        stall_seconds=settings.stall_seconds,
                        max_output_bytes=settings.max_output_bytes
                        or (4 * job.input_size_bytes + 1024**3),
                        cwd=scratch,
                    )
                    if result.stop_reason or step.output is None or step.output.is_file():
                        break
                if result is None or result.returncode != 0 or result.stop_reason is not None:
                    break
                done_weight += step.weight
        assert result is not None
        return await self._conclude(running, result, plan, input_path)

    async def _conclude(
        self, running: RunningJob, result: FFmpegResult, plan: OutputPlan, input_path: Path
    ) -> Outcome:
        """Judge ffmpeg's runs and end the job accordingly: stored and completed, or failed."""
        runtime, claim = self.runtime, running.claim
        job = claim.job
        if running.lost:
            return Outcome.CANCELLED
        if running.shutting_down:
            await queue.requeue(runtime.db, claim, count_attempt=False)
            return Outcome.REQUEUED
        if result.stop_reason in ("timeout", "stalled"):
            return await self._fail(claim, "timeout", describe_failure(result))
        made_main = plan.is_package or plan.main_path.is_file()
        if result.returncode != 0 or not made_main:
            message = describe_failure(
                result,
                input_path,
                plan.main_path,
                plan.scratch,
                memory_bytes=runtime.settings.ffmpeg_memory_bytes,
            )
            code = "storage_full" if "No space left" in result.stderr_tail else "transcode_failed"
            return await self._fail(claim, code, message)
        made = plan.collect()
        try:
            described = await describe_result(plan, made, runtime.settings)
        except UnsupportedMedia as exc:
            return await self._fail(
                claim, "transcode_failed", f"The output is not playable: {exc.detail}"
            )
        key, download_bytes = await self._store(job.id, plan, made)
        described["size_bytes"] = download_bytes
        done = await queue.complete(
            runtime.db,
            claim,
            output_key=key,
            result=described,
            retention_seconds=runtime.settings.retention_hours * 3600,
            payloads=runtime.payloads,
        )
        if done is None:  # cancelled or deleted at the last moment: the output is not wanted
            await blobs.delete_outputs(runtime.storage, job.id, key)
            return Outcome.CANCELLED
        return Outcome.COMPLETED

    async def _store(self, job_id: str, plan: OutputPlan, made: list[MadeFile]) -> tuple[str, int]:
        """Store every file made under its key; returns the key and size of the download (for
        a package, a ZIP of all its files, streamed from storage). The job completes only
        after this."""
        storage = self.runtime.storage
        main_key = blobs.output_key(job_id, output_extension(plan.options))
        for f in made:
            await storage.put_file(
                blobs.file_key(job_id, f.path, role=f.role, main_key=main_key), f.local
            )
        if plan.is_package:
            files = [
                {
                    "path": f.path,
                    "role": f.role,
                    "size_bytes": f.size_bytes,
                    "content_type": f.content_type,
                }
                for f in made
            ]
            return blobs.package_zip_key(job_id), await store_package_zip(storage, job_id, files)
        return main_key, made[0].size_bytes

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
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from vidq import datadir, metrics
from vidq.db.models import Job
from vidq.errors import StorageUnavailable, UnsupportedMedia
from vidq.faults import describe, is_transient, retry_transient
from vidq.jobs import blobs, queue
from vidq.jobs.options import ResolvedOptions, output_extension
from vidq.jobs.queue import Claim
from vidq.jobs.states import JobStatus
from vidq.jobs.subscriptions import JobChange
from vidq.media.command import job_timeout_seconds
from vidq.media.ffmpeg import FFmpegResult, describe_failure, run_ffmpeg
from vidq.media.info import MediaInfo
from vidq.worker.chunked import chunk_job
from vidq.worker.importer import InputRefused, import_unless_stopped
from vidq.worker.lease import keep_leased, still_ours
from vidq.worker.limits import RunLimits
from vidq.worker.measures import add_measure_steps
from vidq.worker.outputs import OutputPlan, Step, describe_result, plan_outputs
from vidq.worker.overlay_files import overlay_files
from vidq.worker.part_worker import run_next_part
from vidq.worker.picture import prepare_picture
from vidq.worker.running import RunningJob, WorkerHost
from vidq.worker.scheduling import scheduling_of
from vidq.worker.store import store_outputs

log = logging.getLogger("vidq.worker")

T = TypeVar("T")

OUTPUT_STEM_MAX = 200
# The longest pause between tries while the worker's loop keeps failing.
MAX_BACKOFF_SECONDS = 30.0


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


def _attempt(claim: Claim) -> str:
    """Which life of a job a log line is about: its attempt, its lease, its worker."""
    return (
        f"attempt {claim.job.attempts}, lease {claim.lease_token[:8]}, worker {claim.job.worker_id}"
    )


class Worker:
    """One conversion slot: claims and runs jobs one at a time until told to stop."""

    def __init__(
        self, runtime: WorkerHost, worker_id: str, limits: RunLimits | None = None
    ) -> None:
        self.runtime = runtime
        self.worker_id = worker_id
        self.limits = limits or RunLimits()
        self.current: RunningJob | None = None
        self.scratch: Path | None = None  # the running job's temporary directory
        self.stopping = asyncio.Event()
        self.part_stop: asyncio.Event | None = None  # the chunk part running, if any

    def _hold(self, stop: asyncio.Event | None, scratch: Path | None) -> None:
        """A part starts (its stop event and folder) or ends (None): busy meanwhile."""
        self.part_stop, self.scratch = stop, scratch
        self.limits.running += 1 if stop is not None else -1
        self.limits.idle_since = time.monotonic()

    async def run(self) -> None:
        """Claim and process jobs until `stopping` is set (or the process's `limits` are
        reached). No error ends the loop: a failing database, store or prober is logged and
        retried with a growing pause."""
        settings = self.runtime.settings
        failures = 0
        while not self.stopping.is_set():
            if settings.chunk_seconds and await run_next_part(
                self.runtime, self.worker_id, self._hold
            ):
                continue  # a part of a chunked job: those of running jobs go first
            if not self.limits.take():
                await self.stopping.wait()  # this process has run all the jobs it may
                return
            outcome: Outcome | None = None
            try:
                claim = await queue.claim_next(
                    self.runtime.db,
                    worker_id=self.worker_id,
                    lease_seconds=settings.lease_seconds,
                    scheduling=scheduling_of(settings),
                )
                if claim is not None:
                    outcome = await self.process(claim)
                failures = 0
            except Exception as exc:
                failures += 1
                pause = min(MAX_BACKOFF_SECONDS, settings.poll_seconds * 2 ** min(failures, 16))
                passing = is_transient(exc)  # a database away for a moment: no traceback
                log.log(
                    logging.WARNING if passing else logging.ERROR,
                    "worker %s: error in its loop (%d in a row: %s); going on in %.1f s",
                    self.worker_id,
                    failures,
                    describe(exc),
                    pause,
                    exc_info=None if passing else exc,
                )
                await self._pause(pause)
                continue
            finally:
                self.limits.give_back(counted=outcome not in (None, Outcome.REQUEUED))
            if outcome is None:
                await self._idle(settings.poll_seconds)

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
        if self.part_stop is not None:
            self.part_stop.set()
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
        heartbeat = asyncio.create_task(
            keep_leased(self.runtime, running), name=f"heartbeat-{job.id}"
        )
        metrics.CONVERSIONS_RUNNING.inc()
        outcome = Outcome.CANCELLED
        # It left the queue: its clients see it running, the jobs behind it move up. Told
        # while ffmpeg starts (on PostgreSQL a NOTIFY is a round trip of its own).
        announced = asyncio.create_task(
            self.runtime.announce_changed(JobChange(job.id, job.owner_id, queue_moved=True))
        )
        try:
            # A cancel or delete in this process (or, on PostgreSQL, anywhere in the fleet)
            # stops ffmpeg at once; the heartbeat would notice too, but only at its next beat.
            with self.runtime.job_events.on_stop(job.id, running.abandon):
                outcome = await self._convert(running, scratch)
        except Exception as exc:
            if not running.lost:
                outcome = await self._after_error(claim, exc)
        finally:
            with contextlib.suppress(Exception):  # it logs its own failures
                await announced
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
        await self._after_end(job, outcome)
        return outcome

    async def _after_error(self, claim: Claim, exc: Exception) -> Outcome:
        """End a job that an error interrupted: a fault that outlasted the retry budget fails
        it with `storage_unavailable`; a transient fault hands it back to the queue without
        counting the attempt; anything else fails it with `transcode_failed`."""
        job = claim.job
        if isinstance(exc, StorageUnavailable):
            log.error("job %s: %s", job.id, exc.detail)
            return await self._fail(claim, "storage_unavailable", exc.detail)
        if is_transient(exc):
            log.warning("job %s: %s; back to the queue", job.id, describe(exc), exc_info=exc)
            await self._durably(lambda: queue.requeue(self.runtime.db, claim, count_attempt=False))
            return Outcome.REQUEUED
        log.error("job %s: unexpected error", job.id, exc_info=exc)
        message = f"Internal error while converting ({type(exc).__name__})."
        return await self._fail(claim, "transcode_failed", message)

    async def _after_end(self, job: Job, outcome: Outcome) -> None:
        """Tell the fleet how the job ended; drop its input if this worker ended it. Best
        effort: the notifier polls, and the janitor removes an input left behind."""
        try:
            if outcome in (Outcome.COMPLETED, Outcome.FAILED):
                await self.runtime.announce_finished(job.id, JobChange(job.id, job.owner_id))
            elif outcome == Outcome.REQUEUED:
                await self.runtime.announce_changed(
                    JobChange(job.id, job.owner_id, queue_moved=True)
                )
        except Exception as exc:
            log.warning("job %s: cannot announce its end (%s)", job.id, describe(exc))
        # A job cancelled or deleted lost its input with it (the API removes it); one that
        # was leased to another worker still needs it.
        if outcome in (Outcome.COMPLETED, Outcome.FAILED):
            try:
                await blobs.delete_input(self.runtime.storage, job.id)
            except Exception as exc:
                log.warning("job %s: its input stays for the janitor (%s)", job.id, describe(exc))

    async def _durably(self, write: Callable[[], Awaitable[T]]) -> T:
        """A database write of the job's end, made again through a transient fault for up to
        VIDQ_TRANSIENT_RETRY_SECONDS (then StorageUnavailable)."""
        return await retry_transient(
            write,
            budget_seconds=self.runtime.settings.transient_retry_seconds,
            what="the database",
        )

    async def _fail(self, claim: Claim, code: str, message: str) -> Outcome:
        """End a leased job as failed; CANCELLED if it was no longer ours to end."""
        runtime = self.runtime
        failed = await self._durably(
            lambda: queue.fail(
                runtime.db, claim, code=code, message=message, payloads=runtime.payloads
            )
        )
        if failed is None:
            failed = await self._durably(
                lambda: queue.ended_by(runtime.db, claim, JobStatus.FAILED)
            )  # written by a first try whose answer was lost?
        return Outcome.CANCELLED if failed is None else Outcome.FAILED

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
            await self._durably(lambda: queue.requeue(self.runtime.db, claim, count_attempt=False))
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
        async with (
            runtime.storage.local_copy(blobs.input_key(job.id), scratch) as input_path,
            overlay_files(runtime.storage, job.id, options, scratch) as overlays,
        ):
            options, info = await prepare_picture(options, info, input_path, settings, running.stop)
            plan = plan_outputs(
                options, info, input_path, scratch, settings, main_name=main_name, overlays=overlays
            )
            add_measure_steps(plan, input_path, settings)
            chunked = chunk_job(runtime, running, plan, input_path)  # None: not chunked
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

                first = step.command()
                if first is None:  # a step found not to be needed (a search that ended)
                    done_weight += step.weight
                    continue
                for argv in (first, step.fallback):
                    if argv is None:
                        continue
                    chunk = chunked is not None and step.name == "convert"
                    result = await (chunked.run if chunked and chunk else run_ffmpeg)(
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
                if step.after is not None:
                    step.after(result)
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
            await self._durably(lambda: queue.requeue(runtime.db, claim, count_attempt=False))
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
        # Outputs go under the job's own keys: write none unless the job is still ours (a
        # worker cut off from the database for longer than its lease may have lost it).
        if not await still_ours(runtime, running):
            return Outcome.CANCELLED
        log.info("job %s: storing its output (%s)", job.id, _attempt(claim))
        key, download_bytes = await store_outputs(runtime.storage, job.id, plan, made)
        described["size_bytes"] = download_bytes
        done = await self._durably(
            lambda: queue.complete(
                runtime.db,
                claim,
                output_key=key,
                result=described,
                retention_seconds=runtime.settings.retention_hours * 3600,
                payloads=runtime.payloads,
            )
        )
        if done is None:
            done = await self._durably(
                lambda: queue.ended_by(runtime.db, claim, JobStatus.COMPLETED)
            )  # written by a first try whose answer was lost?
        if done is not None:
            log.info("job %s completed (%s)", job.id, _attempt(claim))
            return Outcome.COMPLETED
        if await self._durably(lambda: queue.cancelled_or_gone(runtime.db, job.id)):
            # Cancelled or deleted at the last moment: the output is not wanted.
            await blobs.delete_outputs(runtime.storage, job.id, key)
        return Outcome.CANCELLED

"""A chunked job's main step, run by the worker that claimed the job (API.md "Scheduling").

With VIDQ_CHUNK_SECONDS set, a single-file H.264/H.265/VP9/AV1 job whose span is longer
than that has its video cut into parts (`vidq.media.chunks`) written as `job_parts` rows
that any idle worker claims. This worker plans them, encodes the sound once, encodes
parts of its own job while any are queued, waits for the others, then joins them and
muxes the sound in (no encoding again). To the job's step loop it is one ffmpeg run:
`ChunkedEncode.run` takes and returns what `run_ffmpeg` does, and the job's progress
counts the sound, each part by its length, and the join.

Not chunked (the ordinary single run): packages, stills, GIFs, stream copies, jobs with
overlays (a burnt-in subtitle's times would restart in each part), a changed frame rate
(`fps`), inputs whose frame rate is unknown. Frame boundaries come from the probed frame
rate: a variable-frame-rate input is cut by time at those boundaries, so its parts still
cover each frame once, but its part lengths follow the nominal rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidq.clock import utcnow
from vidq.config import Settings
from vidq.db.models import JobPart
from vidq.faults import describe, is_transient
from vidq.jobs import blobs, parts
from vidq.jobs.options import output_extension
from vidq.media.chunks import (
    CHUNKED_CODECS,
    CONCAT_LIST,
    audio_command,
    concat_list,
    join_command,
    part_bounds,
    part_seek_seconds,
)
from vidq.media.ffmpeg import FFmpegResult, run_ffmpeg
from vidq.worker.outputs import OutputPlan
from vidq.worker.part_worker import encode_part
from vidq.worker.running import RunningJob, WorkerHost

log = logging.getLogger("vidq.worker")

# Shares of the job's progress besides the parts' (each part counts its own seconds).
AUDIO_SHARE = 0.03
JOIN_SHARE = 0.03


def chunk_job(
    host: WorkerHost, running: RunningJob, plan: OutputPlan, input_path: Path
) -> ChunkedEncode | None:
    """The chunked main step of this job, or None: the ordinary single run."""
    chunk_seconds = host.settings.chunk_seconds
    options, video = plan.options, plan.info.video
    if (
        not chunk_seconds
        or plan.is_package
        or options.format not in ("mp4", "mov", "mkv", "webm")
        or options.video_codec not in CHUNKED_CODECS
        or video is None
        or not video.fps
        or options.fps is not None
        or plan.overlays is not None
        or plan.span_seconds <= chunk_seconds
    ):
        return None
    bounds = part_bounds(plan.span_seconds, video.fps, chunk_seconds)
    if len(bounds) < 2:
        return None
    return ChunkedEncode(host, running, plan, input_path, bounds, video.fps)


class ChunkedEncode:
    """The main step of one chunked job (see the module's docstring)."""

    def __init__(
        self,
        host: WorkerHost,
        running: RunningJob,
        plan: OutputPlan,
        input_path: Path,
        bounds: list[tuple[int, int]],
        fps: float,
    ) -> None:
        self.host, self.running, self.plan = host, running, plan
        self.input_path, self.bounds, self.fps = input_path, bounds, fps
        self.job_id = running.claim.job.id

    def _planned(self) -> list[parts.PartPlan]:
        extension = output_extension(self.plan.options)
        start = self.plan.options.start
        last = len(self.bounds) - 1
        return [
            parts.PartPlan(
                idx=k,
                start_frame=a,
                end_frame=None if k == last else b,
                start_seconds=part_seek_seconds(start, a, self.fps),
                seconds=(b - a) / self.fps,
                output_key=blobs.chunk_key(self.job_id, k, extension),
            )
            for k, (a, b) in enumerate(self.bounds)
        ]

    async def run(
        self,
        argv: list[str],
        *,
        settings: Settings,
        on_progress: Callable[[float], None],
        stop: asyncio.Event,
        timeout_seconds: float,
        stall_seconds: float,
        max_output_bytes: int,
        cwd: Path | None = None,
    ) -> FFmpegResult:
        """Plan, encode the sound, have the parts encoded, join: as one run of the step
        (`argv`, the single run it stands for, is not used)."""
        limits = {
            "settings": settings,
            "stop": stop,
            "timeout_seconds": timeout_seconds,
            "stall_seconds": stall_seconds,
            "max_output_bytes": max_output_bytes,
            "cwd": cwd or self.plan.scratch,
        }
        try:
            return await self._run(on_progress, limits)
        except Exception as exc:
            if not is_transient(exc):  # the job fails: its parts go (a passing fault keeps them)
                await self._ended(FFmpegResult(None, "", None))
            raise

    async def _run(self, on_progress: Callable[[float], None], run: dict[str, Any]) -> FFmpegResult:
        settings: Settings = run["settings"]
        stop: asyncio.Event = run["stop"]
        max_output_bytes: int = run["max_output_bytes"]
        host, plan = self.host, self.plan
        scratch: Path = run["cwd"]
        span = plan.span_seconds
        total = span * (1 + AUDIO_SHARE + JOIN_SHARE)

        def report(done_seconds: float) -> None:  # in the step's own seconds
            on_progress(span * done_seconds / total)

        planned = self._planned()
        recipe = {
            "options": plan.options.model_dump(),
            "info": plan.info.to_json(),
            "max_output_bytes": max_output_bytes,
        }
        await parts.plan(host.db, self.job_id, planned, recipe)
        audio_path: Path | None = None
        if plan.info.audio is not None and plan.options.audio_codec != "none":
            audio_path = scratch / f"audio.{output_extension(plan.options)}"
            audio_options = plan.options.model_copy(update={"video_codec": "none"})
            result = await run_ffmpeg(
                audio_command(
                    settings.ffmpeg_binary(),
                    self.input_path,
                    audio_path,
                    audio_options,
                    plan.info,
                    settings,
                    audio_filters=plan.audio_filters,
                ),
                on_progress=lambda s: report(AUDIO_SHARE * min(s, span)),
                **run,
            )
            if result.returncode != 0 or result.stop_reason:
                return await self._ended(result)
        failed = await self._encode_parts(stop, lambda s: report(AUDIO_SHARE * span + s))
        if failed is not None:
            return await self._ended(failed)
        names = [f"part-{p.idx:04d}.{p.output_key.rsplit('.', 1)[1]}" for p in planned]
        async with contextlib.AsyncExitStack() as stack:
            for p, name in zip(planned, names, strict=True):
                local = await stack.enter_async_context(
                    host.storage.local_copy(p.output_key, scratch)
                )
                link = scratch / name
                link.unlink(missing_ok=True)
                link.symlink_to(local.absolute())
            (scratch / CONCAT_LIST).write_text(concat_list(names))
            joined = join_command(
                settings.ffmpeg_binary(),
                scratch / CONCAT_LIST,
                audio_path,
                plan.main_path,
                format=plan.options.format,
                video_codec=plan.options.video_codec,
            )
            result = await run_ffmpeg(
                joined,
                on_progress=lambda s: report(span * (1 + AUDIO_SHARE) + JOIN_SHARE * min(s, span)),
                **run,
            )
        return await self._ended(result)

    async def _encode_parts(
        self, stop: asyncio.Event, report: Callable[[float], None]
    ) -> FFmpegResult | None:
        """Encode parts of this job here while any are queued, then wait for the rest; None
        once all are done, else how it ended (a part failed, or `stop` was set)."""
        host, settings = self.host, self.host.settings
        ours: dict[int, float] = {}  # the part encoded here now, and how far it is
        known: list[JobPart] = []  # the parts as last read

        def tally() -> None:
            report(
                sum(
                    r.seconds * (1.0 if r.status == parts.DONE else ours.get(r.idx, r.progress))
                    for r in known
                )
            )

        async def progress() -> None:
            known[:] = await parts.parts_of(host.db, self.job_id)
            tally()

        while not stop.is_set():
            await progress()
            claim = await parts.claim_part(
                host.db,
                worker_id=self.running.claim.job.worker_id or "",
                lease_seconds=settings.lease_seconds,
                max_attempts=settings.max_attempts,
                job_id=self.job_id,
            )
            if claim is not None:
                idx = claim.part.idx

                def seen(fraction: float, idx: int = idx) -> None:
                    ours[idx] = fraction
                    tally()

                ended = await encode_part(
                    host, claim, stop, input_path=self.input_path, on_progress=seen
                )
                ours.pop(idx, None)
                log.info("job %s: part %d %s here", self.job_id, idx, ended)
                continue
            rows = known
            if len(rows) != len(self.bounds):
                return FFmpegResult(1, "", None, message="The parts of the conversion were lost.")
            broken = next((r for r in rows if r.status == parts.FAILED), None)
            if broken is not None:
                return FFmpegResult(1, "", None, message=broken.error_message or "A part failed.")
            worn = next(
                (
                    r
                    for r in rows
                    if r.status != parts.DONE
                    and r.attempts >= settings.max_attempts
                    and (r.status != parts.RUNNING or _expired(r))
                ),
                None,
            )
            if worn is not None:
                message = f"A part of the conversion was interrupted {worn.attempts} times."
                return FFmpegResult(1, "", None, message=message)
            if all(r.status == parts.DONE for r in rows):
                return None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.poll_seconds):
                    await stop.wait()
        return FFmpegResult(None, "", "stopped")

    async def _ended(self, result: FFmpegResult) -> FFmpegResult:
        """Tidy up after the step: the parts' rows and files go once the job is done with
        them (joined, failed or cancelled); a job only handed back (shutdown, a lost lease
        to another worker) keeps them for its next attempt."""
        running = self.running
        keep = running.shutting_down or (
            running.lost and await parts.job_unfinished(self.host.db, self.job_id)
        )
        if not keep:
            try:
                await blobs.delete_chunks(self.host.storage, self.job_id)
                await parts.drop(self.host.db, self.job_id)
            except Exception as exc:
                log.warning(
                    "job %s: its parts stay for the janitor (%s)", self.job_id, describe(exc)
                )
        return result


def _expired(row: JobPart) -> bool:
    return row.lease_expires_at is not None and row.lease_expires_at < utcnow()

"""Encoding one part of a chunked job's video (API.md "Scheduling"), on any worker.

The part's lease is renewed beside its ffmpeg, with its progress; a renewal that matches
nothing (the job was cancelled, deleted or ended, or the part was taken by another
worker after this one was cut off) stops ffmpeg at once. The encoded part is stored under
the job's keys (`blobs.chunk_key`) so the job's worker, on whatever machine, can join it;
a part stored just as its job was cancelled is removed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from vidq import datadir
from vidq.faults import describe
from vidq.jobs import blobs, parts
from vidq.jobs.options import ResolvedOptions
from vidq.jobs.parts import PartClaim
from vidq.media.chunks import part_command
from vidq.media.command import job_timeout_seconds
from vidq.media.ffmpeg import describe_failure, run_ffmpeg
from vidq.media.info import MediaInfo
from vidq.worker.running import WorkerHost

log = logging.getLogger("vidq.worker")


def part_options(options: ResolvedOptions, claim: PartClaim) -> ResolvedOptions:
    """The job's options for one part: started at its seek point, no sound, and the job's
    end only for the last part (the others stop after their frames)."""
    part = claim.part
    return options.model_copy(
        update={
            "start": part.start_seconds or None,
            "end": options.end if part.end_frame is None else None,
            "audio_codec": "none",
        }
    )


@contextlib.asynccontextmanager
async def _input(
    host: WorkerHost, job_id: str, scratch: Path, local: Path | None
) -> AsyncIterator[Path]:
    if local is not None:
        yield local
        return
    async with host.storage.local_copy(blobs.input_key(job_id), scratch) as path:
        yield path


async def _keep_leased(
    host: WorkerHost, claim: PartClaim, progress: list[float], lost: Callable[[], None]
) -> None:
    settings = host.settings
    while True:
        await asyncio.sleep(settings.heartbeat_seconds)
        try:
            ours = await parts.renew_part(
                host.db, claim, progress=progress[0], lease_seconds=settings.lease_seconds
            )
        except Exception as exc:
            log.warning("part %s: heartbeat failed (%s); will retry", claim.part.id, describe(exc))
            continue
        if not ours:
            lost()
            return


def part_scratch(host: WorkerHost, claim: PartClaim) -> Path:
    """The temporary folder of one claimed part."""
    part = claim.part
    return host.settings.tmp_dir / f"{part.job_id}-part{part.idx}-{claim.lease_token[:8]}"


async def encode_part(
    host: WorkerHost,
    claim: PartClaim,
    stop: asyncio.Event,
    *,
    input_path: Path | None = None,
    on_progress: Callable[[float], None] = lambda _: None,
) -> str:
    """Encode and store one claimed part; how it ended: "done", "failed", "lost" (not ours
    any more) or "stopped" (`stop` was set: handed back to the queue)."""
    settings, part = host.settings, claim.part
    recipe = part.recipe
    options = ResolvedOptions(**recipe["options"])
    info = MediaInfo.from_json(recipe["info"])
    scratch = part_scratch(host, claim)
    scratch.mkdir(mode=datadir.DIR_MODE, parents=True, exist_ok=True)
    extension = part.output_key.rsplit(".", 1)[1]
    output = scratch / f"part.{extension}"
    lost = asyncio.Event()
    progress = [0.0]
    # ffmpeg stops on `stop` (the worker's shutdown, or the job's own stop when its
    # worker encodes the part) or once the part is lost; a lost part stops only itself.
    halt = asyncio.Event()
    relay = asyncio.create_task(stop.wait())
    relay.add_done_callback(lambda _: halt.set())

    def abandon() -> None:
        lost.set()
        halt.set()

    def seen(seconds: float) -> None:
        progress[0] = min(1.0, seconds / part.seconds) if part.seconds else 0.0
        on_progress(progress[0])

    heartbeat = asyncio.create_task(_keep_leased(host, claim, progress, abandon))
    try:
        async with _input(host, part.job_id, scratch, input_path) as source:
            frames = None if part.end_frame is None else part.end_frame - part.start_frame
            argv = part_command(
                settings.ffmpeg_binary(),
                source,
                output,
                part_options(options, claim),
                info,
                settings,
                frames=frames,
            )
            result = await run_ffmpeg(
                argv,
                settings=settings,
                on_progress=seen,
                stop=halt,
                timeout_seconds=job_timeout_seconds(info, settings),
                stall_seconds=settings.stall_seconds,
                max_output_bytes=int(recipe["max_output_bytes"]),
                cwd=scratch,
            )
        if lost.is_set():
            return "lost"
        if result.stop_reason == "stopped":  # `stop`: handed back, not counted
            await parts.finish_part(host.db, claim, status=parts.QUEUED)
            return "stopped"
        if result.returncode != 0 or result.stop_reason or not output.is_file():
            message = describe_failure(result, output, scratch)
            await parts.finish_part(host.db, claim, status=parts.FAILED, error_message=message)
            return "failed"
        if not await parts.renew_part(
            host.db, claim, progress=1.0, lease_seconds=settings.lease_seconds
        ):
            return "lost"
        await host.storage.put_file(part.output_key, output)
        if not await parts.finish_part(host.db, claim, status=parts.DONE):
            # Cancelled (or re-leased) while it was stored: nobody will join it.
            await host.storage.delete(part.output_key)
            return "lost"
        return "done"
    finally:
        for task in (heartbeat, relay):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        shutil.rmtree(scratch, ignore_errors=True)


async def run_next_part(
    host: WorkerHost,
    worker_id: str,
    register: Callable[[asyncio.Event | None, Path | None], None],
) -> bool:
    """Claim and encode the next queued part of any running chunked job; False if there was
    none (or the database could not say). `register` is told the part's stop event and
    temporary folder while it runs (the worker's shutdown sets the one, the janitor spares
    the other), then None, None."""
    settings = host.settings
    try:
        claim = await parts.claim_part(
            host.db,
            worker_id=worker_id,
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
        )
    except Exception as exc:
        log.warning("worker %s: cannot look for parts (%s)", worker_id, describe(exc))
        return False
    if claim is None:
        return False
    stop = asyncio.Event()
    register(stop, part_scratch(host, claim))
    try:
        ended = await encode_part(host, claim, stop)
        log.info(
            "job %s: part %d %s (worker %s)", claim.part.job_id, claim.part.idx, ended, worker_id
        )
    except Exception as exc:
        log.error(
            "job %s: part %d: %s", claim.part.job_id, claim.part.idx, describe(exc), exc_info=exc
        )
        with contextlib.suppress(Exception):
            await parts.finish_part(
                host.db,
                claim,
                status=parts.FAILED,
                error_message=f"Internal error ({type(exc).__name__}).",
            )
    finally:
        register(None, None)
    return True

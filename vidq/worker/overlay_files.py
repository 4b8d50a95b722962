"""A job's overlay files, fetched into its scratch folder for ffmpeg.

The watermark is used as stored (checked at submission); the subtitles are written anew
for the job from the stored, already clean copy: shifted by its `start`, as ASS (for libass
or a track) and, for a streaming package with a soft track, as WebVTT too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from vidq.jobs import blobs
from vidq.jobs.options import ResolvedOptions
from vidq.media.overlay_filters import OverlayFiles
from vidq.media.package import PACKAGE_FORMATS
from vidq.media.subtitle_files import job_subtitles
from vidq.storage import Storage

SUBTITLES_ASS = "overlay-subtitles.ass"
SUBTITLES_VTT = "overlay-subtitles.vtt"


@asynccontextmanager
async def overlay_files(
    storage: Storage, job_id: str, options: ResolvedOptions, scratch: Path
) -> AsyncIterator[OverlayFiles | None]:
    """The job's overlay files in `scratch` for the block (None if it has none)."""
    if not (options.watermark or options.subtitles):
        yield None
        return
    async with AsyncExitStack() as stack:
        watermark = subtitles = vtt = None
        if options.watermark:
            key = blobs.part_key(job_id, "watermark")
            watermark = await stack.enter_async_context(storage.local_copy(key, scratch))
        if options.subtitles:
            key = blobs.part_key(job_id, "subtitles")
            stored = await stack.enter_async_context(storage.local_copy(key, scratch))
            if options.format in PACKAGE_FORMATS and options.subtitles_mode == "track":
                # A package's soft track is a WebVTT rendition beside it, not an input.
                vtt_path = scratch / SUBTITLES_VTT
                vtt = job_subtitles(stored, vtt_path, start=options.start, kind="vtt")
            else:
                subtitles = job_subtitles(stored, scratch / SUBTITLES_ASS, start=options.start)
        yield OverlayFiles(
            watermark=watermark,
            subtitles=subtitles,
            subtitles_vtt=vtt,
            burn_subtitles=options.subtitles_mode != "track",
        )

"""Before a job's pictures are made: confirm that a flagged input is interlaced, and find
the black bars of `crop=auto` (ffmpeg runs over samples, see `vidq.media.analysis`).

`prepare_picture` answers the options and input facts the job's outputs are then planned
from: `crop=auto` becomes the box found (or no crop), and an input that idet finds
progressive is no longer taken as interlaced. The job's stored options are not changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from vidq.config import Settings
from vidq.jobs.options import ResolvedOptions
from vidq.media.analysis import confirm_interlaced, detect_crop
from vidq.media.info import MediaInfo


async def prepare_picture(
    options: ResolvedOptions,
    info: MediaInfo,
    input_path: Path,
    settings: Settings,
    stop: asyncio.Event,
) -> tuple[ResolvedOptions, MediaInfo]:
    """The options and input facts to plan the outputs from, after looking at the input."""
    video = info.video
    if video is None or options.deinterlace is None:  # no pictures are made
        return options, info
    start = options.start or 0.0
    if video.interlaced and options.deinterlace == "auto":
        interlaced = await confirm_interlaced(input_path, info, settings, stop, start=start)
        if not interlaced:
            video = dataclasses.replace(video, interlaced=False)
            info = dataclasses.replace(info, video=video)
    if options.crop == "auto":
        duration = info.duration_seconds or 0.0
        end = min(options.end, duration) if options.end is not None else duration
        box = await detect_crop(
            input_path,
            info,
            settings,
            options,
            stop,
            start=start,
            span_seconds=max(0.0, end - start),
        )
        crop = None if box is None else "{}:{}:{}:{}".format(*box)
        options = options.model_copy(update={"crop": crop})
    return options, info

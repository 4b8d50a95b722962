"""Looking at an input's pictures before converting it: is it really interlaced, where are
its black bars? Both are ffmpeg runs over samples of the input, done by the worker (they
decode pictures, which the API's probe does not: it must answer an upload quickly).

- Interlacing: the probe reports the stream's field order. A stream flagged interlaced is
  confirmed by ffmpeg's `idet` over `IDET_SAMPLE_FRAMES` frames from a tenth into the span:
  it is deinterlaced only if idet finds more interlaced frames (top or bottom field first)
  than progressive ones. Unflagged streams are taken as progressive (idet alone is fooled
  by sharp moving edges, so it confirms a flag rather than replacing it).
- Black bars (`crop=auto`): `cropdetect` (`round=2`, black below 24 of 255) over
  `CROP_SAMPLE_FRAMES` frames at each of `CROP_SAMPLE_POINTS` points spread over the span,
  on the picture as displayed; the crop is the smallest box holding every sample's picture,
  so that bars are cut only where all samples are black.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

from vidq.config import Settings
from vidq.media.command import input_command
from vidq.media.ffmpeg import run_ffmpeg
from vidq.media.filters import PictureSettings, displayed_filters, square_pixels
from vidq.media.info import MediaInfo, VideoInfo

log = logging.getLogger(__name__)

IDET_SAMPLE_FRAMES = 100
CROP_SAMPLE_POINTS = 5
CROP_SAMPLE_FRAMES = 4
CROP_BLACK_LIMIT = 24  # of 255: darker rows and columns at the edges are bars
ANALYSIS_TIMEOUT_SECONDS = 120.0

_IDET = re.compile(r"Multi frame detection: TFF:\s*(\d+)\s+BFF:\s*(\d+)\s+Progressive:\s*(\d+)")
_CROP = re.compile(r"crop=(-?\d+):(-?\d+):(-?\d+):(-?\d+)")

Box = tuple[int, int, int, int]  # width, height, x, y


def _sample_command(
    input_path: Path,
    info: MediaInfo,
    settings: Settings,
    *,
    at_seconds: float,
    frames: int,
    filters: list[str],
) -> list[str]:
    """ffmpeg argv running `filters` over `frames` frames from `at_seconds`, writing nothing
    but its log (at info level, where idet and cropdetect report)."""
    ffmpeg = settings.ffmpeg_binary()
    argv = input_command(ffmpeg, input_path, info, settings, start=at_seconds, autorotate=False)
    argv[argv.index("-loglevel") + 1] = "info"
    return [
        *argv,
        "-map",
        "0:V:0",
        "-frames:v",
        str(frames),
        "-vf",
        ",".join(filters),
        "-f",
        "null",
        "-",
    ]


def _last_numbers(pattern: re.Pattern[str], log_text: str) -> tuple[int, ...] | None:
    """The numbers of the last line of the log that `pattern` matches (a filter's final
    report), or None if none does."""
    found = pattern.findall(log_text)
    return tuple(int(n) for n in found[-1]) if found else None


def idet_command(
    input_path: Path, info: MediaInfo, settings: Settings, *, at_seconds: float
) -> list[str]:
    """ffmpeg argv running idet over a sample of the input as stored."""
    frames = IDET_SAMPLE_FRAMES
    return _sample_command(
        input_path, info, settings, at_seconds=at_seconds, frames=frames, filters=["idet"]
    )


def parse_idet(log_text: str) -> tuple[int, int, int] | None:
    """idet's multi-frame counts (top field first, bottom field first, progressive)."""
    counts = _last_numbers(_IDET, log_text)
    if counts is None:
        return None
    tff, bff, progressive = counts
    return tff, bff, progressive


def cropdetect_command(
    input_path: Path,
    info: MediaInfo,
    settings: Settings,
    options: PictureSettings,
    *,
    at_seconds: float,
) -> list[str]:
    """ffmpeg argv running cropdetect over a few frames of the picture as displayed."""
    assert info.video is not None
    filters = [
        *displayed_filters(options, info.video),
        *square_pixels(info.video),
        f"cropdetect=limit={CROP_BLACK_LIMIT}:round=2:reset=0:skip=0",
    ]
    frames = CROP_SAMPLE_FRAMES
    return _sample_command(
        input_path, info, settings, at_seconds=at_seconds, frames=frames, filters=filters
    )


def parse_cropdetect(log_text: str) -> Box | None:
    """cropdetect's last box, or None if it found none (an all-black sample has none)."""
    numbers = _last_numbers(_CROP, log_text)
    if numbers is None:
        return None
    width, height, x, y = numbers
    if width <= 0 or height <= 0 or x < 0 or y < 0:
        return None
    return width, height, x, y


def merge_boxes(boxes: list[Box], video: VideoInfo) -> Box | None:
    """The smallest box holding every box, inside the picture; None if it is the whole
    picture (no bars) or there is no box."""
    if not boxes:
        return None
    left = min(x for _, _, x, _ in boxes)
    top = min(y for _, _, _, y in boxes)
    right = min(video.width, max(x + w for w, _, x, _ in boxes))
    bottom = min(video.height, max(y + h for _, h, _, y in boxes))
    box = (right - left, bottom - top, left, top)
    if box == (video.width, video.height, 0, 0) or box[0] < 2 or box[1] < 2:
        return None
    return box


def sample_points(start: float, span_seconds: float, count: int) -> list[float]:
    """`count` moments spread evenly over a span (the middle of each of its equal parts)."""
    return [start + span_seconds * (n + 0.5) / count for n in range(count)]


async def _run_for_log(argv: list[str], settings: Settings, stop: asyncio.Event) -> str | None:
    """Run an analysis; the tail of its log, or None if it failed or was stopped."""
    result = await run_ffmpeg(
        argv,
        settings=settings,
        on_progress=lambda _seconds: None,
        stop=stop,
        timeout_seconds=ANALYSIS_TIMEOUT_SECONDS,
        stall_seconds=settings.stall_seconds,
        max_output_bytes=1024**2,
    )
    if result.returncode != 0 or result.stop_reason is not None:
        if result.stop_reason != "stopped":
            log.warning("input analysis failed: %s", result.stderr_tail[-400:])
        return None
    return result.stderr_tail


async def confirm_interlaced(
    input_path: Path, info: MediaInfo, settings: Settings, stop: asyncio.Event, *, start: float
) -> bool:
    """Whether idet, on a sample, finds the (flagged) input interlaced; the flag if it
    cannot tell."""
    assert info.video is not None
    span = (info.duration_seconds or 0.0) - start
    at = start + max(0.0, 0.1 * span)
    argv = idet_command(input_path, info, settings, at_seconds=at)
    log_text = await _run_for_log(argv, settings, stop)
    counts = parse_idet(log_text or "")
    if counts is None or sum(counts) == 0:
        return info.video.interlaced
    tff, bff, progressive = counts
    return tff + bff > progressive


async def detect_crop(
    input_path: Path,
    info: MediaInfo,
    settings: Settings,
    options: PictureSettings,
    stop: asyncio.Event,
    *,
    start: float,
    span_seconds: float,
) -> Box | None:
    """The box without black bars, in displayed pixels; None if there are none."""
    assert info.video is not None
    boxes = []
    for at in sample_points(start, span_seconds, CROP_SAMPLE_POINTS):
        argv = cropdetect_command(input_path, info, settings, options, at_seconds=at)
        box = parse_cropdetect(await _run_for_log(argv, settings, stop) or "")
        if box is not None:
            boxes.append(box)
        if stop.is_set():
            return None
    return merge_boxes(boxes, info.video)

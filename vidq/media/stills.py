"""Stills of a video: a poster frame and a storyboard (a sprite of thumbnails with its WebVTT map).

The poster is taken at a moment into the span: among the frames of the next ten seconds
that are not black (mean luma above 24 of 255), ffmpeg's `thumbnail` filter picks, from
the first two seconds of them, the one most like their average, so a fade or a black
stretch at that moment is passed over. A video black all through that window gets the
plain choice instead (`poster_command(..., skip_black=False)`). The storyboard is
one JPEG grid of small tiles, one every `interval` seconds, and `storyboard.vtt` maps each
time range to its tile with a `#xywh=` fragment (the form Mux and video.js plugins read).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from vidq.config import Settings
from vidq.media.command import input_command
from vidq.media.info import MediaInfo

POSTER = "poster.jpg"
STORYBOARD = "storyboard.jpg"
STORYBOARD_VTT = "storyboard.vtt"
POSTER_AT_FRACTION = 0.1
THUMBNAIL_CANDIDATES = 50  # frames the poster is chosen among
POSTER_WINDOW_SECONDS = 10.0  # how far past the moment a non-black frame is looked for
NOT_BLACK_LUMA = 24  # mean luma (0-255) above which a frame is not black
TILE_WIDTH = 160
MAX_COLUMNS = 10


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def poster_seconds(span_start: float, span_seconds: float, asked: float | None) -> float:
    """When the poster is taken: as asked (clamped into the span), else 10 % into the span."""
    moment = asked if asked is not None else span_start + POSTER_AT_FRACTION * span_seconds
    return min(max(moment, span_start), span_start + max(0.0, span_seconds - 0.05))


def poster_command(
    ffmpeg: str,
    input_path: Path,
    output_path: Path,
    info: MediaInfo,
    settings: Settings,
    *,
    at_seconds: float,
    width: int,
    height: int,
    skip_black: bool = True,
    filters: Sequence[str] = (),
) -> list[str]:
    """ffmpeg argv writing a `width`x`height` JPEG poster taken at `at_seconds` (it writes
    nothing if `skip_black` and every frame of the window is black); `filters`: the job's
    picture chain up to its scaler (`vidq.media.filters.still_filters`), if any."""
    argv = input_command(
        ffmpeg, input_path, info, settings, start=at_seconds, progress=False, autorotate=not filters
    )
    picture = f"thumbnail={THUMBNAIL_CANDIDATES},scale={width}:{height}:flags=bicubic,setsar=1"
    if skip_black:
        picture = (
            "signalstats,metadata=mode=select:key=lavfi.signalstats.YAVG"
            f":value={NOT_BLACK_LUMA}:function=greater," + picture
        )
    picture = ",".join([*filters, picture])
    return [
        *argv,
        "-t",
        f"{POSTER_WINDOW_SECONDS:g}",
        "-map",
        "0:V:0",
        "-vf",
        picture,
        "-frames:v",
        "1",
        "-q:v",
        "3",
        "-f",
        "image2",
        "-update",
        "1",
        "file:" + str(output_path.absolute()),
    ]


def storyboard_interval(span_seconds: float, asked: float | None) -> float:
    """Seconds between tiles: as asked, else a hundredth of the span, at least 1 s."""
    return asked if asked else max(1.0, span_seconds / 100)


def storyboard_layout(
    span_seconds: float, interval: float, width: int, height: int
) -> tuple[int, int, int, int, int]:
    """(tiles, columns, rows, tile width, tile height) for a span and a picture size."""
    tiles = max(1, math.ceil(span_seconds / interval - 1e-9))
    columns = min(MAX_COLUMNS, tiles)
    rows = math.ceil(tiles / columns)
    tile_width = min(TILE_WIDTH, _even(width))
    return tiles, columns, rows, tile_width, _even(tile_width * height / width)


def storyboard_command(
    ffmpeg: str,
    input_path: Path,
    output_path: Path,
    info: MediaInfo,
    settings: Settings,
    *,
    start: float,
    span_seconds: float,
    interval: float,
    width: int,
    height: int,
    filters: Sequence[str] = (),
) -> list[str]:
    """ffmpeg argv writing the storyboard sprite: one tile every `interval` seconds;
    `filters` as for `poster_command`."""
    _, columns, rows, tile_width, tile_height = storyboard_layout(
        span_seconds, interval, width, height
    )
    argv = input_command(
        ffmpeg, input_path, info, settings, start=start, progress=False, autorotate=not filters
    )
    picture = (
        f"fps=1/{interval:g}:round=down,scale={tile_width}:{tile_height}:flags=bicubic,"
        f"setsar=1,tile={columns}x{rows}"
    )
    picture = ",".join([*filters, picture])
    return [
        *argv,
        "-t",
        f"{span_seconds:.3f}",
        "-map",
        "0:V:0",
        "-vf",
        picture,
        "-frames:v",
        "1",
        "-q:v",
        "4",
        "-f",
        "image2",
        "-update",
        "1",
        "file:" + str(output_path.absolute()),
    ]


def _clock(seconds: float) -> str:
    whole = int(seconds)
    millis = round((seconds - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}.{millis:03d}"


def storyboard_vtt(span_seconds: float, interval: float, width: int, height: int) -> str:
    """The WebVTT map of a storyboard: each time range to its tile's `#xywh=` rectangle."""
    tiles, columns, _, tile_width, tile_height = storyboard_layout(
        span_seconds, interval, width, height
    )
    cues = ["WEBVTT", ""]
    for n in range(tiles):
        begin, end = n * interval, min((n + 1) * interval, span_seconds)
        x, y = (n % columns) * tile_width, (n // columns) * tile_height
        cues += [
            f"{_clock(begin)} --> {_clock(end)}",
            f"{STORYBOARD}#xywh={x},{y},{tile_width},{tile_height}",
            "",
        ]
    return "\n".join(cues)

"""The conversion options a client may send: each one's resolved type and its parser.

`ResolvedOptions` holds every option with its final value; `PARSERS` reads each one's
text. The rules that combine them (presets, codecs, what applies where) are in
`vidq.jobs.options`. Options are grouped by the feature they belong to; a new option
takes its place in both tables, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic

from vidq.jobs.option_values import (
    parse_audio_bitrate,
    parse_bool,
    parse_choice,
    parse_fps,
    parse_int,
    parse_renditions,
    parse_seconds,
    parse_segment_seconds,
    parse_storyboard_interval,
    parse_video_bitrate,
    parse_video_codec,
)
from vidq.jobs.presets import PRESETS
from vidq.jobs.priority import DEFAULT_PRIORITY, parse_priority
from vidq.media.formats import (
    AUDIO_CODECS,
    CRF_RANGES,
    FORMATS,
    MAX_HEIGHT,
    MAX_WIDTH,
    MIN_HEIGHT,
    MIN_WIDTH,
)

MAX_STORYBOARD_TILES = 1000


class ResolvedOptions(pydantic.BaseModel, frozen=True, extra="forbid"):
    """Every conversion option with its final value; None where it does not apply."""

    preset: str
    format: str
    video_codec: str
    audio_codec: str
    width: int | None
    height: int | None
    upscale: bool
    crf: int | None
    video_bitrate: str | None
    audio_bitrate: str | None
    fps: float | None
    start: float | None
    end: float | None
    # Streaming packages (hls, dash, cmaf) and stills; defaults for jobs stored before them.
    renditions: tuple[int, ...] | None = None
    segment_seconds: float | None = None
    poster: bool = False
    poster_at: float | None = None
    storyboard: bool = False
    storyboard_interval: float | None = None
    # -- fast paths (transcode, trim): options added below keep this order --

    # -- scheduling --
    priority: int = DEFAULT_PRIORITY

    # -- picture: hdr, geometry, deinterlace --

    # -- overlays: watermark, subtitles --

    # -- sound and quality: loudness, quality_report, target_vmaf --

    short_side: int | None = None  # from a preset only (mp4-h264-720p): the short side's size


PRESET_ONLY_FIELDS = ("short_side",)  # set by presets; a client cannot send them
# The options a client may send: one for each other field of ResolvedOptions, in its order.
OPTION_FIELDS = tuple(f for f in ResolvedOptions.model_fields if f not in PRESET_ONLY_FIELDS)


PARSERS: dict[str, Callable[[str], Any]] = {
    "preset": parse_choice(tuple(PRESETS)),
    "format": parse_choice(FORMATS),
    "video_codec": parse_video_codec,
    "audio_codec": parse_choice(AUDIO_CODECS),
    "width": parse_int(MIN_WIDTH, MAX_WIDTH),
    "height": parse_int(MIN_HEIGHT, MAX_HEIGHT),
    "upscale": parse_bool,
    "crf": parse_int(0, max(high for _, high in CRF_RANGES.values())),
    "video_bitrate": parse_video_bitrate,
    "audio_bitrate": parse_audio_bitrate,
    "fps": parse_fps,
    "start": parse_seconds,
    "end": parse_seconds,
    "renditions": parse_renditions,
    "segment_seconds": parse_segment_seconds,
    "poster": parse_bool,
    "poster_at": parse_seconds,
    "storyboard": parse_bool,
    "storyboard_interval": parse_storyboard_interval,
    # -- fast paths --
    # -- scheduling --
    "priority": parse_priority,
    # -- picture --
    # -- overlays --
    # -- sound and quality --
}
assert tuple(PARSERS) == OPTION_FIELDS, "one parser for each option, in the same order"

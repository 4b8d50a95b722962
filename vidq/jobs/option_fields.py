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

from vidq.jobs.fast_paths import TRANSCODE_CHOICES, TRIM_CHOICES
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
from vidq.jobs.overlays import SUBTITLES_MODES, WATERMARK_POSITIONS, parse_fraction
from vidq.jobs.picture_options import (
    parse_crop,
    parse_deinterlace,
    parse_flip,
    parse_hdr,
    parse_rotate,
)
from vidq.jobs.presets import PRESETS
from vidq.jobs.priority import DEFAULT_PRIORITY, parse_priority
from vidq.jobs.sound_quality import parse_target_vmaf
from vidq.media.formats import (
    AUDIO_CODECS,
    CRF_RANGES,
    FORMATS,
    MAX_HEIGHT,
    MAX_WIDTH,
    MIN_HEIGHT,
    MIN_WIDTH,
)
from vidq.media.loudness import LOUDNESS_CHOICES

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

    # -- fast paths: transcode, trim --
    transcode: str = TRANSCODE_CHOICES[0]  # auto: copy the streams if a remux gives the same
    trim: str = TRIM_CHOICES[0]  # exact: a trimmed job is re-encoded to stay frame-exact

    # -- scheduling --
    priority: int = DEFAULT_PRIORITY

    # -- picture: hdr, geometry, deinterlace --
    hdr: str | None = None  # tonemap or keep; None where no pictures are made
    rotate: int | None = None  # degrees clockwise
    flip: str | None = None  # h or v
    crop: str | None = None  # w:h:x:y in displayed pixels, or auto
    deinterlace: str | None = None  # auto or off; None where no pictures are made

    # -- overlays: watermark, subtitles --
    watermark: bool = False  # set by the server when the part `watermark` came
    watermark_position: str | None = None
    watermark_margin: float | None = None
    watermark_scale: float | None = None
    watermark_opacity: float | None = None
    subtitles: bool = False  # set by the server when the part `subtitles` came
    subtitles_mode: str | None = None

    # -- sound and quality: loudness, quality_report, target_vmaf --
    loudness: str | None = None
    quality_report: bool = False
    target_vmaf: float | None = None

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
    "transcode": parse_choice(TRANSCODE_CHOICES),
    "trim": parse_choice(TRIM_CHOICES),
    # -- scheduling --
    "priority": parse_priority,
    # -- picture --
    "hdr": parse_hdr,
    "rotate": parse_rotate,
    "flip": parse_flip,
    "crop": parse_crop,
    "deinterlace": parse_deinterlace,
    # -- overlays --
    "watermark": parse_bool,
    "watermark_position": parse_choice(WATERMARK_POSITIONS),
    "watermark_margin": parse_fraction(0.0, 0.45),
    "watermark_scale": parse_fraction(0.0, 1.0, above_low=True),
    "watermark_opacity": parse_fraction(0.0, 1.0),
    "subtitles": parse_bool,
    "subtitles_mode": parse_choice(SUBTITLES_MODES),
    # -- sound and quality --
    "loudness": parse_choice(LOUDNESS_CHOICES),
    "quality_report": parse_bool,
    "target_vmaf": parse_target_vmaf,
}
assert tuple(PARSERS) == OPTION_FIELDS, "one parser for each option, in the same order"

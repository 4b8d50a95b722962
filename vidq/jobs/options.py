"""Conversion options and presets: parse what a client sent, fill in defaults, validate.

A client sends options as strings (form fields or query parameters). `resolve_options`
turns them, together with a preset's defaults, into one `ResolvedOptions` where every
option has its final value (None where it does not apply), or raises `InvalidOption`
listing every bad field at once. `check_against_input` then checks the few options that
can only be judged once the input has been probed. What formats and codecs exist, what
each format holds and the limits on each value are facts about media, kept in
`vidq.media.formats`; this module owns the request: its options, presets and rules.

Resolution rules, in order:

1. The preset (default `mp4-h264`) supplies defaults; explicit options win.
2. A codec the client did not name comes from the preset when the resolved format can
   hold it, else from the format's own default (`format=webm` alone gives VP9 + Opus).
3. A preset's `crf` or `audio_bitrate` only carries over to the codec it was meant for;
   another codec gets its own default. A preset's size, fps or quality settings are
   dropped silently where they do not apply (a copied or absent stream); the same option
   given explicitly is an error instead.
4. `width` and `height` together fit the video inside that box, keeping its aspect ratio.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from vidq.errors import InvalidOption
from vidq.jobs.presets import DEFAULT_PRESET, PRESETS, Preset
from vidq.jobs.strict import decimal_number, shown, whole_number
from vidq.media.formats import (
    AUDIO_BITRATE_RANGES,
    AUDIO_ENCODERS,
    CODEC_LABELS,
    COPYABLE_AUDIO,
    COPYABLE_VIDEO,
    CRF_RANGES,
    DEFAULT_AUDIO_BITRATE,
    DEFAULT_CRF,
    FORMAT_AUDIO_CODECS,
    FORMAT_DEFAULT_CODECS,
    FORMAT_VIDEO_CODECS,
    GIF_CODEC,
    GIF_DEFAULT_FPS,
    GIF_MAX_FPS,
    MAX_FPS,
    MAX_HEIGHT,
    MAX_VIDEO_BITRATE,
    MAX_WIDTH,
    MIN_FPS,
    MIN_HEIGHT,
    MIN_VIDEO_BITRATE,
    MIN_WIDTH,
    PACKAGE_FORMATS,
    STILL_CODEC,
    VIDEO_ENCODERS,
    format_content_type,
    format_extension,
)

# Re-exported: the choices a request may name, which the API's schema lists (api imports
# nothing from media).
from vidq.media.formats import AUDIO_CODECS as AUDIO_CODECS
from vidq.media.formats import FORMATS as FORMATS
from vidq.media.formats import VIDEO_CODECS as VIDEO_CODECS
from vidq.media.info import MediaInfo
from vidq.media.package import MAX_SEGMENT_SECONDS, MIN_SEGMENT_SECONDS

MAX_RENDITIONS = 8
MIN_STORYBOARD_INTERVAL, MAX_STORYBOARD_INTERVAL = 0.1, 3600.0
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


# The options a client may send: one for each field of ResolvedOptions, in its order.
OPTION_FIELDS: tuple[str, ...] = tuple(ResolvedOptions.model_fields)


class _Errors:
    """Collects field errors so that a client hears about all of them at once."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidOption(errors=self.items)


def _one_of(values: tuple[str, ...]) -> str:
    return ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]


def _parse_choice(values: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.lower()
        if value not in values:
            raise ValueError(f"must be one of {_one_of(values)}; got {text!r}")
        return value

    return parse


def _parse_video_codec(text: str) -> str:
    value = text.lower()
    if value in (GIF_CODEC, STILL_CODEC):
        return value
    return _parse_choice(VIDEO_CODECS)(text)


# Numbers are plain ASCII digits (vidq.jobs.strict): no sign, exponent, separators or hex.
def _parse_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = whole_number(text)
        if value is None:
            raise ValueError(
                f"must be a whole number between {low} and {high}, in the digits 0-9 only"
                f" (no sign, decimal point, exponent or separator); got {shown(text)}"
            )
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}; got {value}")
        return value

    return parse


def _parse_seconds(text: str) -> float:
    value = decimal_number(text)
    if value is None:
        raise ValueError(
            "must be a number of seconds, 0 or more, in digits with an optional decimal"
            f" point such as 90 or 12.5 (no sign or exponent); got {shown(text)}"
        )
    return value


def _parse_fps(text: str) -> float:
    value = decimal_number(text)
    if value is None or not MIN_FPS <= value <= MAX_FPS:
        raise ValueError(
            f"must be a number of frames per second between {MIN_FPS:g} and {MAX_FPS:g},"
            " in digits with an optional decimal point such as 30 or 29.97; got"
            f" {shown(text)}"
        )
    return value


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _parse_bool(text: str) -> bool:
    value = text.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"must be true or false; got {text!r}")


_BITRATE = re.compile(r"(?P<number>[0-9]{1,15}(?:\.[0-9]{1,6})?)(?P<unit>[kKmM]?)", re.ASCII)


def parse_bitrate(text: str) -> int:
    """Bits per second from `2500k`, `4M`, `128k` or a plain number; ValueError if malformed."""
    match = _BITRATE.fullmatch(text)
    if match is None:
        raise ValueError(
            "must be a bitrate such as 2500k, 4M or 128k: digits 0-9 with an optional"
            f" decimal point and a k or M (no sign or exponent); got {shown(text)}"
        )
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[match["unit"].lower()]
    return round(float(match["number"]) * scale)


def format_bitrate(bits_per_second: int) -> str:
    """The short form of a bitrate: 4000000 -> "4M", 2500000 -> "2500k"."""
    if bits_per_second % 1_000_000 == 0:
        return f"{bits_per_second // 1_000_000}M"
    if bits_per_second % 1_000 == 0:
        return f"{bits_per_second // 1_000}k"
    return str(bits_per_second)


def _parse_video_bitrate(text: str) -> str:
    bits = parse_bitrate(text)
    if not MIN_VIDEO_BITRATE <= bits <= MAX_VIDEO_BITRATE:
        raise ValueError(
            f"must be between {format_bitrate(MIN_VIDEO_BITRATE)} and"
            f" {format_bitrate(MAX_VIDEO_BITRATE)}; got {text}"
        )
    return format_bitrate(bits)


def _parse_audio_bitrate(text: str) -> str:
    # The exact range depends on the codec and is checked once the codec is known; a value
    # far beyond every codec's is refused here, while it is still the client's text.
    bits = parse_bitrate(text)
    if bits <= 0:
        raise ValueError(f"must be more than 0; got {text}")
    highest = max(high for _, high in AUDIO_BITRATE_RANGES.values())
    if bits > 100 * highest:
        raise ValueError(f"must be at most {format_bitrate(highest)}; got {text}")
    return format_bitrate(bits)


def _parse_renditions(text: str) -> tuple[int, ...]:
    """A ladder as sizes of the short side: `1080,720,480`."""
    parse = _parse_int(MIN_HEIGHT, MAX_HEIGHT)
    parts = [part.strip() for part in text.split(",")]
    if not 1 <= len(parts) <= MAX_RENDITIONS:
        raise ValueError(f"must list 1 to {MAX_RENDITIONS} sizes, such as 1080,720,480")
    sizes = tuple(parse(part) for part in parts)
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"lists a size twice; got {shown(text)}")
    return sizes


def _parse_segment_seconds(text: str) -> float:
    value = _parse_seconds(text)
    if not MIN_SEGMENT_SECONDS <= value <= MAX_SEGMENT_SECONDS:
        raise ValueError(
            f"must be between {MIN_SEGMENT_SECONDS:g} and {MAX_SEGMENT_SECONDS:g} seconds;"
            f" got {value:g}"
        )
    return value


def _parse_storyboard_interval(text: str) -> float:
    value = _parse_seconds(text)
    if not MIN_STORYBOARD_INTERVAL <= value <= MAX_STORYBOARD_INTERVAL:
        raise ValueError(
            f"must be between {MIN_STORYBOARD_INTERVAL:g} and {MAX_STORYBOARD_INTERVAL:g}"
            f" seconds; got {value:g}"
        )
    return value


_PARSERS: dict[str, Callable[[str], Any]] = {
    "preset": _parse_choice(tuple(PRESETS)),
    "format": _parse_choice(FORMATS),
    "video_codec": _parse_video_codec,
    "audio_codec": _parse_choice(AUDIO_CODECS),
    "width": _parse_int(MIN_WIDTH, MAX_WIDTH),
    "height": _parse_int(MIN_HEIGHT, MAX_HEIGHT),
    "upscale": _parse_bool,
    "crf": _parse_int(0, max(high for _, high in CRF_RANGES.values())),
    "video_bitrate": _parse_video_bitrate,
    "audio_bitrate": _parse_audio_bitrate,
    "fps": _parse_fps,
    "start": _parse_seconds,
    "end": _parse_seconds,
    "renditions": _parse_renditions,
    "segment_seconds": _parse_segment_seconds,
    "poster": _parse_bool,
    "poster_at": _parse_seconds,
    "storyboard": _parse_bool,
    "storyboard_interval": _parse_storyboard_interval,
}
assert tuple(_PARSERS) == OPTION_FIELDS, "one parser for each option, in the same order"


def _parse_raw(raw: Mapping[str, str], errors: _Errors) -> dict[str, Any]:
    """Each explicitly given option, parsed to its type; empty strings count as not given."""
    given: dict[str, Any] = {}
    for name, text in raw.items():
        parser = _PARSERS.get(name)
        if parser is None:
            errors.add(name, f"unknown option; the options are {_one_of(OPTION_FIELDS)}")
            continue
        text = text.strip()
        if not text:
            continue
        try:
            given[name] = parser(text)
        except ValueError as exc:
            errors.add(name, str(exc))
    return given


def _resolve_codec(
    kind: str, fmt: str, given: dict[str, Any], preset: Preset, errors: _Errors
) -> str:
    """The video or audio codec: explicit, else the preset's if the format holds it."""
    allowed = (FORMAT_VIDEO_CODECS if kind == "video_codec" else FORMAT_AUDIO_CODECS)[fmt]
    default = FORMAT_DEFAULT_CODECS[fmt][0 if kind == "video_codec" else 1]
    if kind in given:
        codec: str = given[kind]
        if codec not in allowed:
            stream = "video" if kind == "video_codec" else "audio"
            if codec == GIF_CODEC:
                message = "gif is a format, not a codec: use format=gif"
            elif codec == "none":
                message = f"the {fmt} format needs {stream}; use {_one_of(allowed)}"
            elif codec == "copy":
                message = f"the {fmt} format cannot copy {stream}; use {_one_of(allowed)}"
            else:
                message = f"the {fmt} format cannot hold {codec}; use {_one_of(allowed)}"
            errors.add(kind, message)
            return default
        return codec
    from_preset = _preset_codec(preset, kind)
    return from_preset if from_preset in allowed else default


def _preset_codec(preset: Preset, kind: str) -> str:
    """The codec a preset means: its own setting, else its format's default."""
    codec = preset.options.get(kind)
    if codec is None:
        codec = FORMAT_DEFAULT_CODECS[preset.options["format"]][0 if kind == "video_codec" else 1]
    return str(codec)


def _stream_option(
    name: str, given: dict[str, Any], preset: Preset, applies: bool, why_not: str, errors: _Errors
) -> Any:
    """An option of one stream: explicit or preset value if it applies, else None."""
    if name in given:
        if applies:
            return given[name]
        errors.add(name, why_not)
        return None
    return preset.options.get(name) if applies else None


def _why_not_video(fmt: str, video_codec: str) -> str:
    if video_codec == "copy":
        return "cannot be used with video_codec=copy: a copied stream is not re-encoded"
    if video_codec == "none":
        if fmt in ("mp3", "m4a"):
            return f"does not apply: the {fmt} format has no video"
        return "does not apply: video_codec=none leaves the video out"
    return f"does not apply to the {fmt} format"


def _why_not_audio(fmt: str, audio_codec: str) -> str:
    if audio_codec == "copy":
        return "cannot be used with audio_codec=copy: a copied stream is not re-encoded"
    if fmt == "gif":
        return "does not apply: the gif format has no sound"
    return "does not apply: audio_codec=none leaves the sound out"


def resolve_options(raw: Mapping[str, str]) -> ResolvedOptions:
    """Options from a request's strings plus preset defaults; InvalidOption lists all bad fields."""
    errors = _Errors()
    given = _parse_raw(raw, errors)
    preset = PRESETS.get(given.get("preset", DEFAULT_PRESET), PRESETS[DEFAULT_PRESET])
    fmt: str = given.get("format", preset.options["format"])
    video_codec = _resolve_codec("video_codec", fmt, given, preset, errors)
    audio_codec = _resolve_codec("audio_codec", fmt, given, preset, errors)
    if video_codec == "none" and audio_codec == "none":
        errors.add(
            "audio_codec",
            "video_codec and audio_codec cannot both be none: the output would be empty",
        )

    package = fmt in PACKAGE_FORMATS
    if package:  # the ladder sets sizes and bitrates: the options that would are refused
        for name in ("width", "height", "crf", "video_bitrate", "audio_bitrate"):
            if name in given:
                errors.add(name, _why_not_package(name, fmt))
                del given[name]
    sized = (video_codec in VIDEO_ENCODERS or video_codec == STILL_CODEC) and not package
    encodes_video = video_codec in VIDEO_ENCODERS
    compressed_video = video_codec in CRF_RANGES and not package
    why_video = _why_not_video(fmt, video_codec)
    width = _stream_option("width", given, preset, sized, why_video, errors)
    height = _stream_option("height", given, preset, sized, why_video, errors)
    # upscale=false is the default, harmless anywhere; only upscale=true can be misplaced.
    if given.get("upscale") is False:
        del given["upscale"]
    upscale = _stream_option(
        "upscale", given, preset, sized or (package and encodes_video), why_video, errors
    )
    fps = _stream_option("fps", given, preset, encodes_video, why_video, errors)
    if video_codec == GIF_CODEC:
        fps = _gif_fps(fps, errors)
    video_bitrate = _stream_option(
        "video_bitrate", given, preset, compressed_video, why_video, errors
    )
    crf = None
    if not package:
        crf = _resolve_crf(video_codec, given, preset, video_bitrate, why_video, errors)
    audio_bitrate = None
    if not package:
        audio_bitrate = _resolve_audio_bitrate(fmt, audio_codec, given, preset, errors)
    extras = _resolve_extras(fmt, video_codec, given, errors)

    start: float | None = given.get("start")
    end: float | None = given.get("end")
    if end is not None and end <= (start or 0.0):
        errors.add("end", f"must be greater than start ({start or 0:g} s); got {end:g}")

    errors.raise_if_any()
    return ResolvedOptions(
        preset=preset.name,
        format=fmt,
        video_codec=video_codec,
        audio_codec=audio_codec,
        width=width,
        height=height,
        upscale=bool(upscale),
        crf=crf,
        video_bitrate=video_bitrate,
        audio_bitrate=audio_bitrate,
        fps=None if fps is None else float(fps),
        start=start,
        end=end,
        **extras,
    )


def _why_not_package(name: str, fmt: str) -> str:
    if name in ("width", "height"):
        return f"does not apply to {fmt} packages: give the ladder's sizes as renditions"
    return f"does not apply to {fmt} packages: the ladder sets the bitrates"


def _resolve_extras(
    fmt: str, video_codec: str, given: dict[str, Any], errors: _Errors
) -> dict[str, Any]:
    """The package and stills options: where they apply, as given; elsewhere an error."""
    extras: dict[str, Any] = {}
    package = fmt in PACKAGE_FORMATS
    for name in ("renditions", "segment_seconds"):
        if name in given and not package:
            errors.add(name, "applies only to the hls, dash and cmaf formats")
        elif package:
            extras[name] = given.get(name)
    has_picture = video_codec not in ("none", STILL_CODEC)
    for flag, detail in (("poster", "poster_at"), ("storyboard", "storyboard_interval")):
        wanted = bool(given.get(flag))
        if wanted and not has_picture:
            why = (
                "does not apply: format=jpg is the still itself"
                if video_codec == STILL_CODEC
                else "needs a video output"
            )
            errors.add(flag, why)
            wanted = False
        extras[flag] = wanted
        allowed = wanted or (detail == "poster_at" and video_codec == STILL_CODEC)
        if detail in given and not allowed:
            errors.add(detail, f"applies only with {flag}=true")
        elif allowed:
            extras[detail] = given.get(detail)
    return extras


def _gif_fps(fps: float | None, errors: _Errors) -> float | None:
    """A GIF's frame rate: its default if unset; browsers play no more than 50 fps."""
    if fps is None:
        return GIF_DEFAULT_FPS
    if fps > GIF_MAX_FPS:
        errors.add(
            "fps",
            f"must be at most {GIF_MAX_FPS:g} for gif (browsers slow faster GIFs"
            f" down); got {fps:g}",
        )
        return None
    return fps


def _resolve_crf(
    video_codec: str,
    given: dict[str, Any],
    preset: Preset,
    video_bitrate: str | None,
    why_not: str,
    errors: _Errors,
) -> int | None:
    """Constant quality: explicit, the preset's for its own codec, else the codec default."""
    if video_codec not in CRF_RANGES:
        if "crf" in given:
            errors.add(
                "crf", why_not if video_codec != GIF_CODEC else "does not apply to the gif format"
            )
        return None
    if "crf" in given:
        crf: int = given["crf"]
        if "video_bitrate" in given:
            errors.add("crf", "give crf (constant quality) or video_bitrate, not both")
            return None
        low, high = CRF_RANGES[video_codec]
        if not low <= crf <= high:
            label = CODEC_LABELS[video_codec]
            errors.add("crf", f"must be between {low} and {high} for {label}; got {crf}")
            return None
        return crf
    if video_bitrate is not None:
        return None
    if _preset_codec(preset, "video_codec") == video_codec and "crf" in preset.options:
        preset_crf: int = preset.options["crf"]
        return preset_crf
    return DEFAULT_CRF[video_codec]


def _resolve_audio_bitrate(
    fmt: str, audio_codec: str, given: dict[str, Any], preset: Preset, errors: _Errors
) -> str | None:
    """Audio bitrate: explicit (within the codec's range), the preset's, or the codec default."""
    if audio_codec not in AUDIO_ENCODERS:
        if "audio_bitrate" in given:
            errors.add("audio_bitrate", _why_not_audio(fmt, audio_codec))
        return None
    low, high = AUDIO_BITRATE_RANGES[audio_codec]
    if "audio_bitrate" in given:
        bitrate: str = given["audio_bitrate"]
        if not low <= parse_bitrate(bitrate) <= high:
            errors.add(
                "audio_bitrate",
                f"must be between {format_bitrate(low)} and"
                f" {format_bitrate(high)} for {audio_codec}; got {bitrate}",
            )
            return None
        return bitrate
    preset_bitrate = preset.options.get("audio_bitrate")
    if _preset_codec(preset, "audio_codec") == audio_codec and preset_bitrate is not None:
        return str(preset_bitrate)
    return DEFAULT_AUDIO_BITRATE[audio_codec]


def check_against_input(options: ResolvedOptions, info: MediaInfo) -> None:
    """Raise InvalidOption for options that cannot work on this (probed) input."""
    errors = _Errors()
    fmt = options.format
    duration = info.duration_seconds
    if options.start is not None and duration is not None and options.start >= duration:
        errors.add(
            "start",
            f"must be before the end of the input ({duration:g} s long); got {options.start:g}",
        )
    if fmt in ("gif", "jpg") and info.video is None:
        errors.add("format", f"the {fmt} format needs a video stream; the input has none")
    elif fmt in ("mp3", "m4a") and info.audio is None:
        errors.add("format", f"the {fmt} format needs an audio stream; the input has none")
    else:
        keeps_video = info.video is not None and options.video_codec != "none"
        keeps_audio = info.audio is not None and options.audio_codec != "none"
        if not keeps_video and not keeps_audio:
            field = "audio_codec" if info.video is None else "video_codec"
            errors.add(field, "the output would be empty: the input has no other stream")
    for flag in ("poster", "storyboard"):
        if getattr(options, flag) and info.video is None:
            errors.add(flag, "needs a video stream; the input has none")
    if options.storyboard and options.storyboard_interval and duration:
        tiles = (min(options.end or duration, duration) - (options.start or 0.0)) / (
            options.storyboard_interval
        )
        if tiles > MAX_STORYBOARD_TILES:
            errors.add(
                "storyboard_interval",
                f"would make {tiles:.0f} tiles of this input; at most {MAX_STORYBOARD_TILES}",
            )
    if options.video_codec == "copy" and info.video is not None:
        _check_copy("video_codec", "video", info.video.codec, COPYABLE_VIDEO.get(fmt), fmt, errors)
    if options.audio_codec == "copy" and info.audio is not None:
        _check_copy("audio_codec", "audio", info.audio.codec, COPYABLE_AUDIO.get(fmt), fmt, errors)
    errors.raise_if_any()


def _check_copy(
    field: str, kind: str, codec: str, copyable: frozenset[str] | None, fmt: str, errors: _Errors
) -> None:
    if copyable is not None and codec not in copyable:
        holds = (FORMAT_VIDEO_CODECS if kind == "video" else FORMAT_AUDIO_CODECS)[fmt]
        encoders = [c for c in holds if c not in ("copy", "none")]
        errors.add(
            field,
            f"the {fmt} format cannot hold the input's {codec} {kind} as is;"
            f" convert it with {_one_of(tuple(encoders))} instead of copy",
        )


def output_extension(options: ResolvedOptions) -> str:
    """The output file's extension, without the dot: "mp4", "webm", "mp3", ..."""
    return format_extension(options.format)


def output_content_type(options: ResolvedOptions) -> str:
    """The output file's media type: "video/mp4", "audio/mpeg", "image/gif", ..."""
    return format_content_type(options.format)

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
   A preset's `short_side` sizes the short side instead; a given width or height wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vidq.jobs.fast_paths import resolve_fast_paths

# Re-exported: the options themselves, defined beside their parsers.
from vidq.jobs.option_fields import MAX_STORYBOARD_TILES as MAX_STORYBOARD_TILES
from vidq.jobs.option_fields import OPTION_FIELDS as OPTION_FIELDS
from vidq.jobs.option_fields import PARSERS
from vidq.jobs.option_fields import PRESET_ONLY_FIELDS as PRESET_ONLY_FIELDS
from vidq.jobs.option_fields import ResolvedOptions as ResolvedOptions
from vidq.jobs.option_values import (
    FieldErrors,
    format_bitrate,
    one_of,
    parse_bitrate,
)
from vidq.jobs.overlays import resolve_overlays
from vidq.jobs.picture_options import resolve_picture
from vidq.jobs.presets import DEFAULT_PRESET, PRESETS, Preset
from vidq.jobs.priority import DEFAULT_PRIORITY
from vidq.jobs.sound_quality import resolve_sound_and_quality
from vidq.media.formats import (
    AUDIO_BITRATE_RANGES,
    AUDIO_ENCODERS,
    CODEC_LABELS,
    CRF_RANGES,
    DEFAULT_AUDIO_BITRATE,
    DEFAULT_CRF,
    FORMAT_AUDIO_CODECS,
    FORMAT_DEFAULT_CODECS,
    FORMAT_VIDEO_CODECS,
    GIF_CODEC,
    GIF_DEFAULT_FPS,
    GIF_MAX_FPS,
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


def _parse_raw(raw: Mapping[str, str], errors: FieldErrors) -> dict[str, Any]:
    """Each explicitly given option, parsed to its type; empty strings count as not given."""
    given: dict[str, Any] = {}
    for name, text in raw.items():
        parser = PARSERS.get(name)
        if parser is None:
            errors.add(name, f"unknown option; the options are {one_of(OPTION_FIELDS)}")
            continue
        text = text.strip()
        if not text:
            continue
        try:
            given[name] = parser(text)
        except ValueError as exc:
            errors.add(name, str(exc))
    return given


def check_option_alone(name: str, text: str) -> None:
    """InvalidOption if the option's name is unknown or its parser refuses its value."""
    errors = FieldErrors()
    _parse_raw({name: text}, errors)
    errors.raise_if_any()


def _resolve_codec(
    kind: str, fmt: str, given: dict[str, Any], preset: Preset, errors: FieldErrors
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
                message = f"the {fmt} format needs {stream}; use {one_of(allowed)}"
            elif codec == "copy":
                message = f"the {fmt} format cannot copy {stream}; use {one_of(allowed)}"
            else:
                message = f"the {fmt} format cannot hold {codec}; use {one_of(allowed)}"
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
    name: str,
    given: dict[str, Any],
    preset: Preset,
    applies: bool,
    why_not: str,
    errors: FieldErrors,
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
    errors = FieldErrors()
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
    sized_by_client = "width" in given or "height" in given
    short_side = preset.options.get("short_side") if sized and not sized_by_client else None
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
    extras |= resolve_overlays(fmt, video_codec, given, errors)
    extras |= resolve_fast_paths(given, video_codec, audio_codec, errors)
    extras |= resolve_sound_and_quality(fmt, video_codec, audio_codec, given, errors)
    if extras["target_vmaf"] is not None:
        crf = None  # the service picks it
    extras |= resolve_picture(video_codec, package, given, why_video, errors)

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
        short_side=short_side,
        priority=given.get("priority", DEFAULT_PRIORITY),
        **extras,
    )


def _why_not_package(name: str, fmt: str) -> str:
    if name in ("width", "height"):
        return f"does not apply to {fmt} packages: give the ladder's sizes as renditions"
    return f"does not apply to {fmt} packages: the ladder sets the bitrates"


def _resolve_extras(
    fmt: str, video_codec: str, given: dict[str, Any], errors: FieldErrors
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


def _gif_fps(fps: float | None, errors: FieldErrors) -> float | None:
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
    errors: FieldErrors,
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
    fmt: str, audio_codec: str, given: dict[str, Any], preset: Preset, errors: FieldErrors
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


def output_extension(options: ResolvedOptions) -> str:
    """The output file's extension, without the dot: "mp4", "webm", "mp3", ..."""
    return format_extension(options.format)


def output_content_type(options: ResolvedOptions) -> str:
    """The output file's media type: "video/mp4", "audio/mpeg", "image/gif", ..."""
    return format_content_type(options.format)

"""Options that can only be judged once the input is probed: its streams, its length, copies."""

from __future__ import annotations

from collections.abc import Collection

from vidq.jobs.option_values import FieldErrors, one_of
from vidq.jobs.options import MAX_STORYBOARD_TILES, ResolvedOptions
from vidq.jobs.picture_options import check_picture
from vidq.jobs.presets import PRESETS
from vidq.jobs.sound_quality import check_sound_and_quality
from vidq.media.formats import (
    COPYABLE_AUDIO,
    COPYABLE_VIDEO,
    FORMAT_AUDIO_CODECS,
    FORMAT_VIDEO_CODECS,
    PACKAGE_FORMATS,
)
from vidq.media.info import MediaInfo


def check_against_input(
    options: ResolvedOptions, info: MediaInfo, *, sent: Collection[str] = ()
) -> None:
    """Raise InvalidOption for options that cannot work on this (probed) input; `sent`:
    the names of the options the client gave, so that an error names what it chose."""
    errors = FieldErrors()
    fmt = options.format
    duration = info.duration_seconds
    if options.start is not None and duration is not None and options.start >= duration:
        errors.add(
            "start",
            f"must be before the end of the input ({duration:g} s long); got {options.start:g}",
        )
    if fmt in ("gif", "jpg") and info.video is None:
        errors.add("format", f"the {fmt} format needs a video stream; the input has none")
    elif _makes_video(options) and info.video is None:
        # Named as the client chose it: the format if it gave one, else the preset.
        if "format" not in sent and fmt == PRESETS[options.preset].options["format"]:
            field, what = "preset", f"the {options.preset} preset"
        else:
            field, what = "format", f"the {fmt} format"
        errors.add(
            field,
            f"{what} makes a video, and the input has none (it is sound only): use preset"
            " mp3 or m4a for its sound (or video_codec=none to keep this format)",
        )
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
    check_sound_and_quality(options, info, errors)
    check_picture(options, info, errors)
    errors.raise_if_any()


def _makes_video(options: ResolvedOptions) -> bool:
    """Whether the options ask for a video file (a package makes do with sound alone)."""
    return options.format not in ("mp3", "m4a", *PACKAGE_FORMATS) and options.video_codec != "none"


def _check_copy(
    field: str,
    kind: str,
    codec: str,
    copyable: frozenset[str] | None,
    fmt: str,
    errors: FieldErrors,
) -> None:
    if copyable is not None and codec not in copyable:
        holds = (FORMAT_VIDEO_CODECS if kind == "video" else FORMAT_AUDIO_CODECS)[fmt]
        encoders = [c for c in holds if c not in ("copy", "none")]
        errors.add(
            field,
            f"the {fmt} format cannot hold the input's {codec} {kind} as is;"
            f" convert it with {one_of(tuple(encoders))} instead of copy",
        )

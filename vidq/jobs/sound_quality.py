"""The rules of the sound and quality options: `loudness`, `quality_report`, `target_vmaf`.

`loudness` needs sound that is re-encoded (it changes the samples); `quality_report` a
video output other than a still; `target_vmaf` a video codec with a constant-quality
scale (it picks the CRF) and neither `crf` nor `video_bitrate` beside it, and no
streaming package (whose ladder sets the bitrates). The ones that need a stream the
input lacks are refused once it is probed (`check_against_input`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vidq.jobs.option_values import FieldErrors
from vidq.jobs.strict import decimal_number, shown
from vidq.media.formats import AUDIO_ENCODERS, CRF_RANGES, PACKAGE_FORMATS, STILL_CODEC
from vidq.media.info import MediaInfo

if TYPE_CHECKING:
    from vidq.jobs.option_fields import ResolvedOptions

MIN_TARGET_VMAF, MAX_TARGET_VMAF = 1.0, 100.0


def parse_target_vmaf(text: str) -> float:
    """A mean VMAF score to reach, 1 to 100, in plain decimal digits."""
    value = decimal_number(text)
    if value is None or not MIN_TARGET_VMAF <= value <= MAX_TARGET_VMAF:
        raise ValueError(
            f"must be a VMAF score between {MIN_TARGET_VMAF:g} and {MAX_TARGET_VMAF:g}, in"
            f" digits with an optional decimal point such as 93 or 95.5; got {shown(text)}"
        )
    return value


def resolve_sound_and_quality(
    fmt: str, video_codec: str, audio_codec: str, given: dict[str, Any], errors: FieldErrors
) -> dict[str, Any]:
    """The three options, where they apply, as given; elsewhere an error each."""
    resolved: dict[str, Any] = {}
    loudness = given.get("loudness")
    if loudness is not None and audio_codec not in AUDIO_ENCODERS:
        errors.add("loudness", _why_not_sound(fmt, audio_codec))
        loudness = None
    resolved["loudness"] = loudness

    report = bool(given.get("quality_report"))
    if report and video_codec in ("none", STILL_CODEC):
        errors.add("quality_report", _why_not_picture(fmt, video_codec))
        report = False
    resolved["quality_report"] = report

    target = given.get("target_vmaf")
    if target is not None:
        why = None
        if fmt in PACKAGE_FORMATS:
            why = f"does not apply to {fmt} packages: the ladder sets the bitrates"
        elif video_codec not in CRF_RANGES:
            why = "needs a video codec with a constant-quality scale: h264, h265, vp9 or av1"
        elif "crf" in given:
            why = "give crf or target_vmaf, not both: target_vmaf picks the crf"
        elif "video_bitrate" in given:
            why = "give video_bitrate or target_vmaf, not both"
        if why is not None:
            errors.add("target_vmaf", why)
            target = None
    resolved["target_vmaf"] = target
    return resolved


def _why_not_sound(fmt: str, audio_codec: str) -> str:
    if audio_codec == "copy":
        return "cannot be used with audio_codec=copy: a copied stream keeps its samples"
    if fmt in ("gif", "jpg"):
        return f"does not apply: the {fmt} format has no sound"
    return "does not apply: audio_codec=none leaves the sound out"


def _why_not_picture(fmt: str, video_codec: str) -> str:
    if video_codec == STILL_CODEC:
        return "does not apply: format=jpg is a still"
    if fmt in ("mp3", "m4a"):
        return f"does not apply: the {fmt} format has no video"
    return "does not apply: video_codec=none leaves the video out"


def check_sound_and_quality(options: ResolvedOptions, info: MediaInfo, errors: FieldErrors) -> None:
    """Errors for the options that need a stream this (probed) input does not have."""
    if options.loudness is not None and info.audio is None:
        errors.add("loudness", "needs sound; the input has none")
    if info.video is None:
        if options.quality_report:
            errors.add("quality_report", "needs a video stream; the input has none")
        if options.target_vmaf is not None:
            errors.add("target_vmaf", "needs a video stream; the input has none")

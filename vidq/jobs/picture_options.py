"""The picture options: `hdr`, `rotate`, `flip`, `crop` and `deinterlace` — their parsers
and their rules.

They apply wherever new pictures are made (an encoded video, a GIF, a still, a package);
with a copied or absent video stream they are left unset, and an explicit one is an
error. `hdr=keep` needs a codec that carries HDR (H.265 or AV1). A `crop` box must lie
inside the input's displayed picture, which only the probe knows (`check_picture`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from vidq.jobs.option_values import FieldErrors, parse_choice
from vidq.jobs.strict import shown
from vidq.media.filters import HDR_CODECS, crop_box
from vidq.media.formats import STILL_CODEC, VIDEO_ENCODERS
from vidq.media.info import MediaInfo

if TYPE_CHECKING:
    from vidq.jobs.option_fields import ResolvedOptions

PICTURE_OPTIONS = ("hdr", "rotate", "flip", "crop", "deinterlace")
HDR_MODES = ("tonemap", "keep")
ROTATIONS = (90, 180, 270)
FLIPS = ("h", "v")
DEINTERLACE_MODES = ("auto", "off")
MIN_CROP_PIXELS = 16

parse_hdr = parse_choice(HDR_MODES)
parse_flip = parse_choice(FLIPS)
parse_deinterlace = parse_choice(DEINTERLACE_MODES)
_CROP = re.compile(r"([0-9]{1,5}):([0-9]{1,5}):([0-9]{1,5}):([0-9]{1,5})")


def parse_rotate(text: str) -> int:
    """Degrees clockwise: 90, 180 or 270."""
    if text not in {str(degrees) for degrees in ROTATIONS}:
        raise ValueError(f"must be 90, 180 or 270 (degrees clockwise); got {shown(text)}")
    return int(text)


def parse_crop(text: str) -> str:
    """`auto`, or `w:h:x:y` in displayed pixels (written back without leading zeros)."""
    if text.lower() == "auto":
        return "auto"
    match = _CROP.fullmatch(text)
    if match is None:
        raise ValueError(
            f"must be auto or w:h:x:y in pixels (e.g. 1920:800:0:140); got {shown(text)}"
        )
    width, height, x, y = (int(part) for part in match.groups())
    if width < MIN_CROP_PIXELS or height < MIN_CROP_PIXELS:
        raise ValueError(
            f"the crop must be at least {MIN_CROP_PIXELS}x{MIN_CROP_PIXELS} pixels; got {text!r}"
        )
    return f"{width}:{height}:{x}:{y}"


def resolve_picture(
    video_codec: str, package: bool, given: dict[str, Any], why_not: str, errors: FieldErrors
) -> dict[str, Any]:
    """The picture options' values: defaults where pictures are made, else None (an
    explicit one where none are made is an error, worded by `why_not`)."""
    makes_pictures = video_codec in VIDEO_ENCODERS or video_codec == STILL_CODEC or package
    resolved: dict[str, Any] = {}
    for name in PICTURE_OPTIONS:
        if name in given and not makes_pictures:
            errors.add(name, why_not)
        resolved[name] = given.get(name) if makes_pictures else None
    if not makes_pictures:
        return resolved
    resolved["hdr"] = resolved["hdr"] or "tonemap"
    resolved["deinterlace"] = resolved["deinterlace"] or "auto"
    if resolved["hdr"] == "keep" and (package or video_codec not in HDR_CODECS):
        made = "the ladder is H.264" if package else f"video_codec is {video_codec}"
        errors.add(
            "hdr",
            f"keep needs video_codec h265 or av1 (a codec that carries HDR); {made}",
        )
        resolved["hdr"] = "tonemap"
    return resolved


def check_picture(options: ResolvedOptions, info: MediaInfo, errors: FieldErrors) -> None:
    """A crop box that does not fit inside the input's displayed picture is an error."""
    box = crop_box(options.crop)
    if box is None or info.video is None:
        return
    width, height, x, y = box
    shown_width, shown_height = info.video.width, info.video.height
    if x + width > shown_width or y + height > shown_height:
        errors.add(
            "crop",
            f"{width}:{height}:{x}:{y} reaches outside the picture, which is displayed at"
            f" {shown_width}x{shown_height} (the box must end within it)",
        )

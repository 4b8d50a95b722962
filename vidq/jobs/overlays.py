"""The overlay options: a watermark image and subtitles, each sent as a part of its own.

A watermark or subtitles file arrives as the multipart part `watermark` / `subtitles`, or
as a finished resumable upload named by `watermark_upload_id` / `subtitles_upload_id`
(`vidq.jobs.overlay_parts` receives and checks them). The options `watermark` and
`subtitles` are never sent as text: the server sets them (`attachment_fields`) when the
part or upload came, and `resolve_overlays` then applies their rules with the others:

- the watermark's position, margin, scale and opacity apply only with a watermark; the
  subtitles' mode only with subtitles; each gets its default where it applies;
- both need a picture that is encoded anew (not `copy`, not `none`, not a sound format or
  a still), except subtitles as a soft track, which need a format that holds one (MP4,
  MOV, WebM, MKV, or HLS/CMAF, whose HLS side gets a WebVTT rendition).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from vidq.errors import InvalidOption
from vidq.jobs.blobs import PART_ROLES
from vidq.jobs.option_values import FieldErrors, one_of
from vidq.jobs.strict import decimal_number, is_job_id, shown

ROLES = PART_ROLES  # each sent as a part (or upload) of its own
UPLOAD_ID_FIELDS = {f"{role}_upload_id": role for role in ROLES}
WATERMARK_POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "center")
SUBTITLES_MODES = ("burn", "track")
WATERMARK_DEFAULTS: dict[str, Any] = {
    "watermark_position": "bottom-right",
    "watermark_margin": 0.02,
    "watermark_scale": 0.15,
    "watermark_opacity": 1.0,
}
WATERMARK_DETAILS = tuple(WATERMARK_DEFAULTS)
# Formats that hold a soft subtitle track, and what it is coded as (packages: WebVTT in HLS).
TRACK_FORMATS = ("mp4", "mov", "webm", "mkv", "hls", "cmaf")
_NO_PICTURE_FORMATS = ("mp3", "m4a", "jpg")


def parse_fraction(low: float, high: float, *, above_low: bool = False) -> Callable[[str], float]:
    """A plain decimal number from `low` to `high` (`above_low`: `low` itself excluded)."""

    def parse(text: str) -> float:
        value = decimal_number(text)
        too_low = value is not None and (value <= low if above_low else value < low)
        if value is None or too_low or value > high:
            bound = "above" if above_low else "from"
            raise ValueError(f"must be a number {bound} {low:g} to {high:g}; got {shown(text)}")
        return value

    return parse


def attachment_fields(
    fields: Mapping[str, str], attached: Collection[str] = ()
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The option fields as `resolve_options` reads them: `watermark`/`subtitles` set to
    `true` for each part that came (`attached`) or upload named, the upload ids taken out;
    and an error for each of those two sent as text, which they cannot be."""
    options = {k: v for k, v in fields.items() if k not in UPLOAD_ID_FIELDS and k not in ROLES}
    errors = []
    for role in ROLES:
        if role in fields:
            errors.append({"field": role, "message": _send_as_part(role)})
        named = bool(fields.get(f"{role}_upload_id"))
        if role in attached and named:
            message = f"send either the part `{role}` or {role}_upload_id, not both"
            errors.append({"field": f"{role}_upload_id", "message": message})
        if role in attached or named:
            options[role] = "true"
    return options, errors


def _send_as_part(role: str) -> str:
    return (
        f"send the file as the multipart part `{role}` (or name a finished resumable upload"
        f" with {role}_upload_id), not as text"
    )


def check_upload_id_field(name: str, value: str) -> None:
    """InvalidOption unless `value` has the form of an upload id (or is empty: not given)."""
    if value and not is_job_id(value):
        raise InvalidOption.field(name, "must be the id at the end of a finished upload's URL")


def check_field_alone(name: str, value: str) -> bool:
    """Check a form field this module owns (an upload id, or a role sent as text); False if
    the field is not one of them."""
    if name in UPLOAD_ID_FIELDS:
        check_upload_id_field(name, value)
        return True
    if name in ROLES:
        raise InvalidOption.field(name, _send_as_part(name))
    return False


def resolve_overlays(
    fmt: str, video_codec: str, given: dict[str, Any], errors: FieldErrors
) -> dict[str, Any]:
    """The overlay options' final values (see the module's rules); errors for misplaced ones."""
    resolved: dict[str, Any] = {}
    watermark, subtitles = bool(given.get("watermark")), bool(given.get("subtitles"))
    mode = given.get("subtitles_mode", "burn") if subtitles else None
    new_picture = video_codec not in ("copy", "none") and fmt not in _NO_PICTURE_FORMATS
    if watermark and not new_picture:
        errors.add("watermark", _why_no_picture(fmt, video_codec))
        watermark = False
    if mode == "burn" and not new_picture:
        errors.add("subtitles", "cannot be burned in: " + _why_no_picture(fmt, video_codec))
        subtitles, mode = False, None
    if mode == "track" and fmt not in TRACK_FORMATS:
        errors.add(
            "subtitles_mode",
            f"the {fmt} format holds no subtitle track; use {one_of(TRACK_FORMATS)},"
            " or subtitles_mode=burn",
        )
        subtitles, mode = False, None
    resolved["watermark"] = watermark
    for name, default in WATERMARK_DEFAULTS.items():
        if name in given and not watermark:
            if "watermark" not in _named_fields(errors):
                errors.add(name, "applies only with a watermark (the part `watermark`)")
        elif watermark:
            resolved[name] = given.get(name, default)
    resolved["subtitles"] = subtitles
    if "subtitles_mode" in given and not given.get("subtitles"):
        errors.add("subtitles_mode", "applies only with subtitles (the part `subtitles`)")
    resolved["subtitles_mode"] = mode
    return resolved


def _named_fields(errors: FieldErrors) -> set[str]:
    """The fields already named in `errors`."""
    return {item["field"] for item in errors.items}


def _why_no_picture(fmt: str, video_codec: str) -> str:
    if fmt in _NO_PICTURE_FORMATS:
        return f"the {fmt} format has no moving picture to put it on"
    if video_codec == "copy":
        return "video_codec=copy does not encode the picture anew"
    return "video_codec=none leaves the picture out"


def changes_pixels(options: Any) -> bool:
    """Whether the options draw on the picture (so the streams cannot just be copied)."""
    return bool(options.watermark or (options.subtitles and options.subtitles_mode == "burn"))

"""How each option's text is read: choices, whole numbers, seconds, bitrates, ladders.

Every parser takes the client's string and returns the typed value, or raises ValueError
with a message for the client; ranges that depend on other options (a codec's CRF or
audio bitrates) are checked later, in `vidq.jobs.options`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from vidq.errors import InvalidOption
from vidq.jobs.strict import decimal_number, shown, whole_number
from vidq.media.formats import (
    AUDIO_BITRATE_RANGES,
    GIF_CODEC,
    MAX_FPS,
    MAX_HEIGHT,
    MAX_VIDEO_BITRATE,
    MIN_FPS,
    MIN_HEIGHT,
    MIN_VIDEO_BITRATE,
    STILL_CODEC,
    VIDEO_CODECS,
)
from vidq.media.package import MAX_SEGMENT_SECONDS, MIN_SEGMENT_SECONDS

MAX_RENDITIONS = 8
MIN_STORYBOARD_INTERVAL, MAX_STORYBOARD_INTERVAL = 0.1, 3600.0


def one_of(values: tuple[str, ...]) -> str:
    return ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]


def parse_choice(values: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.lower()
        if value not in values:
            raise ValueError(f"must be one of {one_of(values)}; got {text!r}")
        return value

    return parse


def parse_video_codec(text: str) -> str:
    value = text.lower()
    if value in (GIF_CODEC, STILL_CODEC):
        return value
    return parse_choice(VIDEO_CODECS)(text)


# Numbers are plain ASCII digits (vidq.jobs.strict): no sign, exponent, separators or hex.
def parse_int(low: int, high: int) -> Callable[[str], int]:
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


def parse_seconds(text: str) -> float:
    value = decimal_number(text)
    if value is None:
        raise ValueError(
            "must be a number of seconds, 0 or more, in digits with an optional decimal"
            f" point such as 90 or 12.5 (no sign or exponent); got {shown(text)}"
        )
    return value


def parse_fps(text: str) -> float:
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


def parse_bool(text: str) -> bool:
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


def parse_video_bitrate(text: str) -> str:
    bits = parse_bitrate(text)
    if not MIN_VIDEO_BITRATE <= bits <= MAX_VIDEO_BITRATE:
        raise ValueError(
            f"must be between {format_bitrate(MIN_VIDEO_BITRATE)} and"
            f" {format_bitrate(MAX_VIDEO_BITRATE)}; got {text}"
        )
    return format_bitrate(bits)


def parse_audio_bitrate(text: str) -> str:
    # The exact range depends on the codec and is checked once the codec is known; a value
    # far beyond every codec's is refused here, while it is still the client's text.
    bits = parse_bitrate(text)
    if bits <= 0:
        raise ValueError(f"must be more than 0; got {text}")
    highest = max(high for _, high in AUDIO_BITRATE_RANGES.values())
    if bits > 100 * highest:
        raise ValueError(f"must be at most {format_bitrate(highest)}; got {text}")
    return format_bitrate(bits)


def parse_renditions(text: str) -> tuple[int, ...]:
    """A ladder as sizes of the short side: `1080,720,480`."""
    parse = parse_int(MIN_HEIGHT, MAX_HEIGHT)
    parts = [part.strip() for part in text.split(",")]
    if not 1 <= len(parts) <= MAX_RENDITIONS:
        raise ValueError(f"must list 1 to {MAX_RENDITIONS} sizes, such as 1080,720,480")
    sizes = tuple(parse(part) for part in parts)
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"lists a size twice; got {shown(text)}")
    return sizes


def parse_seconds_between(low: float, high: float) -> Callable[[str], float]:
    """A number of seconds from `low` to `high`."""

    def parse(text: str) -> float:
        value = parse_seconds(text)
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g} seconds; got {value:g}")
        return value

    return parse


parse_segment_seconds = parse_seconds_between(MIN_SEGMENT_SECONDS, MAX_SEGMENT_SECONDS)
parse_storyboard_interval = parse_seconds_between(MIN_STORYBOARD_INTERVAL, MAX_STORYBOARD_INTERVAL)


class FieldErrors:
    """Collects field errors so that a client hears about all of them at once."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidOption(errors=self.items)

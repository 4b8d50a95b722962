"""What is in a media file, as probing found it, and the server's limits on inputs.

`MediaInfo` (with its `VideoInfo` and `AudioInfo`) describes one probed file: the API
shows it (`to_api`), jobs store it (`to_json`, `from_json`), and the prober's child
answers in its JSON shape. `check_limits` refuses inputs over the `Settings` limits on
dimensions and duration.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from vidq.config import Settings
from vidq.errors import UnsupportedMedia


@dataclass(frozen=True)
class VideoInfo:
    """The first video stream (cover art excluded); width and height as displayed."""

    codec: str
    width: int
    height: int
    fps: float | None
    pix_fmt: str | None
    rotation: int
    # The codec's profile as ffmpeg names it ("High", "Main", "Profile 0") and its level
    # (H.264: level_idc, 41 for 4.1); None when unknown (and in probes stored before them).
    profile: str | None = None
    level: int | None = None
    # Colour and scanning, as ffmpeg names them; defaults for inputs probed before them.
    bit_depth: int | None = None
    color_primaries: str | None = None  # bt709, bt2020, ...
    color_transfer: str | None = None  # bt709, smpte2084 (PQ), arib-std-b67 (HLG), ...
    color_space: str | None = None  # the matrix: bt709, bt2020nc, ...
    interlaced: bool = False  # the stream's field order says so (the worker confirms it)
    # HDR10 static metadata of the first frame: the mastering display's R, G, B and white
    # point chromaticities (x, y each) and its max and min luminance in cd/m²; MaxCLL, MaxFALL.
    mastering_display: tuple[float, ...] | None = None
    content_light: tuple[int, int] | None = None

    @property
    def hdr(self) -> str | None:
        """ "pq" or "hlg" for an HDR transfer, else None."""
        return HDR_TRANSFERS.get(self.color_transfer or "")


HDR_TRANSFERS = {"smpte2084": "pq", "arib-std-b67": "hlg"}


@dataclass(frozen=True)
class AudioInfo:
    """The first audio stream."""

    codec: str
    channels: int
    sample_rate: int


@dataclass(frozen=True)
class MediaInfo:
    """What probing found in a file."""

    container: str  # an everyday name: mp4, mov, m4a, webm, matroska, avi, mp3, ...
    format_name: str  # ffmpeg's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration_seconds: float | None
    video: VideoInfo | None
    audio: AudioInfo | None

    @property
    def demuxer(self) -> str:
        """The demuxer's short name, to force it when ffmpeg opens the file."""
        return self.format_name.split(",")[0]

    def to_api(self) -> dict[str, Any]:
        """The shape the API shows for a job's input and result."""
        video = self.video
        audio = self.audio
        return {
            "container": self.container,
            "duration_seconds": self.duration_seconds,
            "video": None
            if video is None
            else {
                "codec": video.codec,
                "width": video.width,
                "height": video.height,
                "fps": video.fps,
                "bit_depth": video.bit_depth,
                "color_primaries": video.color_primaries,
                "color_transfer": video.color_transfer,
                "color_space": video.color_space,
                "hdr": video.hdr,
                "interlaced": video.interlaced,
            },
            "audio": None
            if audio is None
            else {
                "codec": audio.codec,
                "channels": audio.channels,
                "sample_rate": audio.sample_rate,
            },
        }

    def to_json(self) -> dict[str, Any]:
        """Every field, as a JSON-ready dict (`from_json` reads it back)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediaInfo:
        """The MediaInfo that `to_json` wrote."""
        video = data.get("video")
        audio = data.get("audio")
        return cls(
            container=str(data["container"]),
            format_name=str(data["format_name"]),
            duration_seconds=_finite_or_none(data.get("duration_seconds")),
            video=None
            if video is None
            else VideoInfo(
                codec=str(video["codec"]),
                width=int(video["width"]),
                height=int(video["height"]),
                fps=_finite_or_none(video.get("fps")),
                pix_fmt=video.get("pix_fmt"),
                rotation=int(video.get("rotation", 0)),
                profile=video.get("profile"),
                level=video.get("level"),
                bit_depth=video.get("bit_depth"),
                color_primaries=video.get("color_primaries"),
                color_transfer=video.get("color_transfer"),
                color_space=video.get("color_space"),
                interlaced=bool(video.get("interlaced", False)),
                mastering_display=_floats_or_none(video.get("mastering_display")),
                content_light=_light_or_none(video.get("content_light")),
            ),
            audio=None
            if audio is None
            else AudioInfo(
                codec=str(audio["codec"]),
                channels=int(audio["channels"]),
                sample_rate=int(audio["sample_rate"]),
            ),
        )


def check_limits(info: MediaInfo, settings: Settings) -> None:
    """UnsupportedMedia if the probed file is over the server's input limits."""
    if info.video is None and info.audio is None:
        raise UnsupportedMedia("The file has no video or audio stream.")
    video = info.video
    max_width, max_height = settings.max_input_width, settings.max_input_height
    if video is not None and (video.width > max_width or video.height > max_height):
        raise UnsupportedMedia(
            f"The video is {video.width}x{video.height} pixels; this server accepts at most"
            f" {max_width}x{max_height}."
        )
    longest = settings.max_input_duration_seconds
    if info.duration_seconds is not None and info.duration_seconds > longest:
        raise UnsupportedMedia(
            f"The file lasts {_clock(info.duration_seconds)}; this server accepts at most"
            f" {_clock(longest)}."
        )


def _clock(seconds: float) -> str:
    """Seconds as h:mm:ss (or m:ss under an hour)."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _finite_or_none(value: Any) -> float | None:
    """A probed number as a float, or None when it is missing or not finite: a NaN or
    infinite fps or duration would make every document that shows it invalid JSON."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _floats_or_none(value: Any) -> tuple[float, ...] | None:
    return None if value is None else tuple(float(v) for v in value)


def _light_or_none(value: Any) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))

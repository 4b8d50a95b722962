"""Probing: is a file a video or audio file we can convert, and what is in it?

The file is opened by PyAV in a child process (`_probe_child.py`) under the same limits
as ffmpeg, with a time limit, the `file` protocol only and a whitelist of real media
containers, and one frame of each chosen stream is decoded to prove it decodes. A crash
or hang there costs the upload an `UnsupportedMedia`, never the server. The limits of
`Settings` on dimensions and duration are then applied here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vidq.config import Settings
from vidq.errors import UnsupportedMedia
from vidq.media.ffmpeg import kill_process_group, read_tail, spawn_limited

logger = logging.getLogger(__name__)

# Demuxers (by ffmpeg short name) of real media containers. Left out on purpose: anything
# that opens other files or URLs (hls, dash, concat, image2, ...), generators (lavfi),
# text formats (tty, subtitles), headerless raw streams, and rarer professional formats
# (mxf, ...) whose demuxers are a larger attack surface than their users justify here.
ALLOWED_DEMUXERS: frozenset[str] = frozenset(
    {
        "mov",  # also mp4, m4a, 3gp, 3g2, mj2 (one demuxer)
        "matroska",  # also webm
        "avi",
        "flv",
        "mpegts",
        "mpeg",  # MPEG program stream (.mpg, .vob)
        "ogg",
        "asf",  # wmv, wma
        "wav",
        "aiff",
        "mp3",
        "aac",
        "flac",
        "gif",
    }
)

_CHILD_SCRIPT = Path(__file__).with_name("_probe_child.py")
_CHILD_OUTPUT_LIMIT_BYTES = 65536


@dataclass(frozen=True)
class VideoInfo:
    """The first video stream (cover art excluded); width and height as displayed."""

    codec: str
    width: int
    height: int
    fps: float | None
    pix_fmt: str | None
    rotation: int


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
            duration_seconds=(
                None if data.get("duration_seconds") is None else float(data["duration_seconds"])
            ),
            video=None
            if video is None
            else VideoInfo(
                codec=str(video["codec"]),
                width=int(video["width"]),
                height=int(video["height"]),
                fps=None if video.get("fps") is None else float(video["fps"]),
                pix_fmt=video.get("pix_fmt"),
                rotation=int(video.get("rotation", 0)),
            ),
            audio=None
            if audio is None
            else AudioInfo(
                codec=str(audio["codec"]),
                channels=int(audio["channels"]),
                sample_rate=int(audio["sample_rate"]),
            ),
        )


async def probe(path: Path, settings: Settings) -> MediaInfo:
    """Probe a file in a child process; UnsupportedMedia says why it cannot be converted."""
    answer = await _run_child(_child_request(path, settings), settings)
    if not answer.get("ok"):
        raise UnsupportedMedia(str(answer.get("reason") or "The file could not be read."))
    info = MediaInfo.from_json(answer["info"])
    check_limits(info, settings)
    return info


def _child_request(path: Path, settings: Settings) -> str:
    """The probe child's JSON request for a file; UnsupportedMedia if the file is empty."""
    path = path.resolve()
    if path.stat().st_size == 0:
        raise UnsupportedMedia("The file is empty.")
    return json.dumps(
        {
            "path": str(path),
            "format_whitelist": ",".join(sorted(ALLOWED_DEMUXERS)),
            "max_width": settings.max_input_width,
            "max_height": settings.max_input_height,
        }
    )


async def _run_child(request: str, settings: Settings) -> dict[str, Any]:
    """Run the probe child on a request; its JSON answer, or UnsupportedMedia."""
    # -I: ignore PYTHON* variables and the user's site; -B: write no bytecode.
    argv = [sys.executable, "-I", "-B", str(_CHILD_SCRIPT), request]
    process = await spawn_limited(
        argv, memory_bytes=settings.ffmpeg_memory_bytes, max_file_bytes=0, niceness=0
    )
    assert process.stdout is not None and process.stderr is not None
    timeout = settings.probe_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await asyncio.gather(
                _read_at_most(process.stdout, _CHILD_OUTPUT_LIMIT_BYTES),
                read_tail(process.stderr, 2048),
            )
            await process.wait()
    except TimeoutError:
        raise UnsupportedMedia(
            f"Reading the file took longer than {timeout:g} s: it is not a file this server"
            " can convert."
        ) from None
    finally:
        if process.returncode is None:  # timed out or cancelled
            await asyncio.shield(kill_process_group(process))
    try:
        answer: dict[str, Any] = json.loads(stdout)
    except ValueError:
        answer = {}
    if process.returncode != 0 or not isinstance(answer, dict) or "ok" not in answer:
        logger.warning(
            "probe child failed with status %s: %s",
            process.returncode,
            stderr.decode("utf-8", "replace"),
        )
        raise UnsupportedMedia("The file could not be read: the media prober failed on it.")
    return answer


async def _read_at_most(stream: asyncio.StreamReader, max_bytes: int) -> bytes:
    """Read to the end of a stream, or until more than `max_bytes` came (an invalid answer)."""
    data = bytearray()
    while len(data) <= max_bytes and (chunk := await stream.read(65536)):
        data += chunk
    return bytes(data)


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

"""Watermark images: a single PNG or JPEG still, checked before ffmpeg overlays it.

The image is probed like any upload, in the probe's child process under its limits, but
only by the still-image demuxers (`image2`, `png_pipe`, `jpeg_pipe`) and with a small
size limit; one frame is decoded to prove it decodes. ffmpeg later opens it with the
demuxer found here forced, the `file` protocol only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vidq.config import Settings
from vidq.errors import UnsupportedMedia
from vidq.media.info import MediaInfo
from vidq.media.probe import _run_child

IMAGE_DEMUXERS = ("image2", "jpeg_pipe", "png_pipe")
IMAGE_CODECS = {"png": "png", "mjpeg": "jpeg"}
MAX_WATERMARK_SIDE = 4096
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class WatermarkImage:
    """A checked watermark: the demuxer that reads it, its kind (`png`, `jpeg`) and size."""

    demuxer: str
    kind: str
    width: int
    height: int


def _refuse(message: str) -> UnsupportedMedia:
    return UnsupportedMedia(
        f"The watermark {message}.", errors=[{"field": "watermark", "message": message}]
    )


async def check_watermark(path: Path, settings: Settings) -> WatermarkImage:
    """The image at `path` if it is one PNG or JPEG still of at most MAX_WATERMARK_SIDE px a
    side; UnsupportedMedia (naming the field `watermark`) otherwise."""
    if path.stat().st_size == 0:
        raise _refuse("is empty")
    request = json.dumps(
        {
            "path": str(path.resolve()),
            "format_whitelist": ",".join(IMAGE_DEMUXERS),
            "max_width": MAX_WATERMARK_SIDE,
            "max_height": MAX_WATERMARK_SIDE,
        }
    )
    try:
        answer = await _run_child(request, settings)
    except UnsupportedMedia as exc:
        raise _refuse(f"could not be read: {exc.detail}") from None
    if not answer.get("ok"):
        reason = str(answer.get("reason") or "it could not be read")
        reason = reason.rstrip(".")
        raise _refuse(f"is not a PNG or JPEG image this server accepts: {reason}")
    info = MediaInfo.from_json(answer["info"])
    video = info.video
    if info.demuxer not in IMAGE_DEMUXERS or video is None or info.audio is not None:
        raise _refuse("is not a single PNG or JPEG image")
    kind = IMAGE_CODECS.get(video.codec)
    if kind is None:
        raise _refuse(f"is a {video.codec} image; send a PNG or JPEG")
    if kind == "png":
        _check_one_png(path.read_bytes())
    if max(video.width, video.height) > MAX_WATERMARK_SIDE:
        raise _refuse(
            f"is {video.width}x{video.height} pixels; at most {MAX_WATERMARK_SIDE} a side"
        )
    return WatermarkImage(info.demuxer, kind, video.width, video.height)


def _check_one_png(data: bytes) -> None:
    """Refuse a PNG that is animated (APNG) or followed by more images: the PNG reader
    would give them all to ffmpeg as frames. Walks the chunks to the first IEND."""
    offset = len(_PNG_SIGNATURE)
    while offset + 12 <= len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        offset += 12 + length
        if kind == b"acTL":
            raise _refuse("is an animated PNG; send a still")
        if kind == b"IEND":
            if data[offset:].strip(b"\x00"):
                raise _refuse("holds more than one image")
            return
    raise _refuse("is a PNG cut short")

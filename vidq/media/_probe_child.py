"""The probe's child process: open one file with PyAV under whitelists, decode a little, report.

`vidq.media.probe` runs this file as a script in a child process with resource limits, so
a demuxer or decoder that crashes or hangs on a hostile file costs only this process. The
process is started ahead of need: it imports PyAV first, then waits for its one JSON request
on stdin (read to the end), prints one JSON answer on stdout and exits. One process, one file:

    {"ok": true, "info": <MediaInfo.to_json()>}   or   {"ok": false, "reason": "<message>"}

A request may say that only some byte ranges of the file are real (`ranges`: the head and
the tail of a blob fetched from a bucket, the rest a hole): the file is then read through
`PartialFile`, and if the demuxer asked for any byte outside them the answer is
`{"ok": false, "incomplete": true}` whatever it found, so the caller probes the whole file.

Reasons are written for the person who uploaded the file and never contain a path. It
imports nothing from vidq, so that it starts fast and runs the same as a plain script.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
from fractions import Fraction
from typing import Any

import av
import av.error
from av.stream import Disposition

# Give up looking for a first decodable frame after this many packets.
MAX_PACKETS = 2000
_NOT_REAL_VIDEO = Disposition.attached_pic | Disposition.timed_thumbnails


class Refused(Exception):
    """The file is not something we convert; the message says why."""


class Incomplete(Exception):
    """The demuxer read outside the ranges of the file that are real."""


class PartialFile(io.RawIOBase):
    """The file at `path`, of which only `ranges` ([start, end) pairs) hold its real bytes.
    A read from anywhere else (below the file's size) finds the end of the file and marks
    `missed`: whatever was concluded after it is not to be trusted."""

    def __init__(self, path: str, ranges: list[list[int]]) -> None:
        super().__init__()
        self.file = open(path, "rb")  # noqa: SIM115 (closed with this object)
        self.size = os.fstat(self.file.fileno()).st_size
        self.ranges = [(int(start), int(end)) for start, end in ranges]
        self.missed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        position = self.file.tell()
        for start, end in self.ranges:
            if start <= position < end:
                wanted = end - position if size < 0 else min(size, end - position)
                return self.file.read(wanted)
        if position < self.size:
            self.missed = True
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()
        super().close()


def probe_file(
    path: str,
    format_whitelist: str,
    max_width: int,
    max_height: int,
    ranges: list[list[int]] | None = None,
) -> dict[str, Any]:
    """Facts about the file at `path` in MediaInfo's JSON shape; Refused if it is unusable;
    Incomplete if only `ranges` of it are real and the demuxer wanted more."""
    if ranges is None:
        return _probe(path, path, format_whitelist, max_width, max_height)
    with PartialFile(path, ranges) as partial:
        try:
            facts = _probe(partial, path, format_whitelist, max_width, max_height)
        except (Refused, av.error.FFmpegError):
            if partial.missed:
                raise Incomplete() from None
            raise
        if partial.missed:
            raise Incomplete()
        return facts


def _probe(
    source: Any, path: str, format_whitelist: str, max_width: int, max_height: int
) -> dict[str, Any]:
    try:
        container = av.open(
            source,
            container_options={"protocol_whitelist": "file", "format_whitelist": format_whitelist},
        )
    except av.error.ArgumentError:
        # EINVAL: what ffmpeg recognised is not on the whitelist (a playlist, a script...).
        raise Refused(
            "The file is not a video or audio file in a container this server accepts."
        ) from None
    except av.error.FFmpegError as exc:
        raise Refused(
            f"The file is not a video or audio file this server can read ({exc.strerror})."
        ) from None
    with container:
        video = next(
            (s for s in container.streams.video if not s.disposition & _NOT_REAL_VIDEO), None
        )
        audio = next(iter(container.streams.audio), None)
        if video is None and audio is None:
            raise Refused("The file has no video or audio stream.")
        streams: list[Any] = [s for s in (video, audio) if s is not None]
        for stream in streams:
            if stream.codec_context is None:
                raise Refused(f"The file's {stream.type} uses a codec this server cannot decode.")
        if video is not None:
            _check_coded_size(
                video.codec_context.width, video.codec_context.height, max_width, max_height
            )
            # The decoder refuses frames larger than this, whatever the header said.
            video.codec_context.options = {"max_pixels": str(max_width * max_height)}
        frames = _first_frames(container, streams)
        for stream in streams:
            if stream.index not in frames:
                raise Refused(f"The file's {stream.type} stream could not be decoded.")
        return {
            "format_name": container.format.name,
            "container": _container_name(container, path),
            "duration_seconds": _duration_seconds(container, streams),
            "video": None if video is None else _video_facts(video, frames[video.index]),
            "audio": None if audio is None else _audio_facts(audio, frames[audio.index]),
        }


def _check_coded_size(width: int, height: int, max_width: int, max_height: int) -> None:
    # Before any decoding: a header may claim a frame too large to allocate. The exact
    # limits (width and height as displayed) are checked by the parent.
    longest, largest = max(max_width, max_height), max_width * max_height
    if max(width, height) > longest or width * height > largest:
        raise Refused(
            f"The video is {width}x{height} pixels; this server accepts at most"
            f" {max_width}x{max_height}."
        )


def _first_frames(container: Any, streams: list[Any]) -> dict[int, Any]:
    """The first decoded frame of each stream, by stream index; decode errors are skipped."""
    frames: dict[int, Any] = {}
    for count, packet in enumerate(container.demux(streams)):
        if count >= MAX_PACKETS:
            break
        try:
            decoded = packet.decode()
        except av.error.FFmpegError:
            continue
        for frame in decoded:
            frames.setdefault(packet.stream.index, frame)
        if len(frames) == len(streams):
            break
    return frames


def _container_name(container: Any, path: str) -> str:
    """A short everyday name for the container: mp4, mov, m4a, webm, matroska, avi..."""
    name: str = container.format.name.split(",")[0]
    if name == "mov":
        brand = container.metadata.get("major_brand", "").strip().lower()
        return {"qt": "mov", "m4a": "m4a", "m4b": "m4a"}.get(brand, "mp4")
    if name == "matroska":
        with open(path, "rb") as file:
            header = file.read(64)
        return "webm" if b"webm" in header else "matroska"
    return name


def _duration_seconds(container: Any, streams: list[Any]) -> float | None:
    """The container's duration, else its longest stream's, else measured by demuxing."""
    if container.duration is not None and container.duration > 0:
        return round(float(container.duration) / av.time_base, 3)
    known = [
        float(s.duration * s.time_base)
        for s in streams
        if s.duration is not None and s.time_base is not None
    ]
    if known and max(known) > 0:
        return round(max(known), 3)
    end = 0.0
    container.seek(0)
    for packet in container.demux(streams):
        if packet.pts is not None and packet.time_base is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return round(end, 3) if end > 0 else None


def _video_facts(stream: Any, frame: Any) -> dict[str, Any]:
    rotation = round(frame.rotation or 0) % 360
    width, height = frame.width, frame.height
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if sar and Fraction(sar) != 1:
        width = round(width * Fraction(sar))
    if rotation in (90, 270):
        width, height = height, width
    rate = stream.average_rate or stream.guessed_rate
    context = stream.codec_context
    level = context.level
    return {
        "codec": context.codec.canonical_name,
        "width": width,
        "height": height,
        "fps": round(float(rate), 3) if rate else None,
        "pix_fmt": frame.format.name,
        "rotation": rotation,
        "profile": context.profile,
        "level": level if level is not None and level >= 0 else None,
        "bit_depth": max((c.bits for c in frame.format.components), default=None),
        "color_primaries": _PRIMARIES.get(frame.color_primaries or context.color_primaries),
        "color_transfer": _TRANSFERS.get(frame.color_trc or context.color_trc),
        "color_space": _MATRICES.get(frame.colorspace or context.colorspace),
        "interlaced": context.field_order in _INTERLACED_FIELD_ORDERS
        or bool(frame.interlaced_frame),
        **_hdr10_metadata(frame),
    }


# ffmpeg's names for the colour values of ISO/IEC 23091-2 (H.273) that video files carry;
# 2 (unspecified) and unknown values read as None.
_PRIMARIES = {
    1: "bt709",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "jedec-p22",
}
_TRANSFERS = {
    1: "bt709",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    11: "iec61966-2-4",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    17: "smpte428",
    18: "arib-std-b67",
}
_MATRICES = {
    0: "gbr",
    1: "bt709",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
    14: "ictcp",
}
# AVFieldOrder: 1 is progressive, 0 unknown; 2-5 are the interlaced orders (TT, BB, TB, BT).
_INTERLACED_FIELD_ORDERS = (2, 3, 4, 5)


def _hdr10_metadata(frame: Any) -> dict[str, Any]:
    """The first frame's HDR10 static metadata (SEI, or the container's, which decoders
    attach to frames): AVMasteringDisplayMetadata and AVContentLightMetadata."""
    found: dict[str, Any] = {"mastering_display": None, "content_light": None}
    for side in frame.side_data:
        name = str(side.type).rsplit(".", 1)[-1]
        data = bytes(side)
        if name == "MASTERING_DISPLAY_METADATA" and len(data) >= 88:
            # Rationals: R, G, B (x, y), white point (x, y), min and max luminance; then
            # whether the primaries and the luminance are set.
            values = struct.unpack_from("<22i", data)
            ratios = [values[n] / values[n + 1] if values[n + 1] else 0.0 for n in range(0, 20, 2)]
            *chromaticities, min_luminance, max_luminance = ratios
            plausible = (
                all(0.0 <= v <= 1.0 for v in chromaticities)
                and 0.0 <= min_luminance < max_luminance <= 100000.0
            )
            if values[20] and values[21] and plausible:  # a hostile file may say anything
                found["mastering_display"] = [
                    *(round(v, 5) for v in chromaticities),
                    round(max_luminance, 4),
                    round(min_luminance, 4),
                ]
        elif name == "CONTENT_LIGHT_LEVEL" and len(data) >= 8:
            max_cll, max_fall = struct.unpack_from("<2I", data)
            if max_cll <= 65535 and max_fall <= 65535:  # 16-bit values in HEVC and AV1
                found["content_light"] = [max_cll, max_fall]
    return found


def _audio_facts(stream: Any, frame: Any) -> dict[str, Any]:
    return {
        "codec": stream.codec_context.codec.canonical_name,
        "channels": frame.layout.nb_channels,
        "sample_rate": frame.sample_rate,
    }


def main() -> int:
    """Probe the file the JSON request on stdin names; print the JSON answer."""
    request = json.loads(sys.stdin.buffer.read())
    try:
        answer = {
            "ok": True,
            "info": probe_file(
                request["path"],
                request["format_whitelist"],
                request["max_width"],
                request["max_height"],
                request.get("ranges"),
            ),
        }
    except Incomplete:
        answer = {"ok": False, "incomplete": True}
    except Refused as exc:
        answer = {"ok": False, "reason": str(exc)}
    except av.error.FFmpegError as exc:
        answer = {"ok": False, "reason": f"The file could not be read ({exc.strerror})."}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    # The answer is out: leave at once, skipping the interpreter's clean-up (the parent
    # waits for this exit). An exception above still exits the ordinary way, status 1.
    os._exit(main())

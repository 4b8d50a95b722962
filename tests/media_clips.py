"""Tiny media files for tests, made by the real ffmpeg from its lavfi test sources.

Clips are a second or two of 160x90 (any size works, odd ones too), so that making and
converting one takes a fraction of a second. Also here: files a prober must refuse.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

# Encoder and muxer per container, for clips made with the defaults.
_DEFAULT_CODECS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx-vp9", "libopus"),
    ".m4a": (None, "aac"),
    ".mp3": (None, "libmp3lame"),
    ".wav": (None, "pcm_s16le"),
    ".ogg": (None, "libopus"),
    ".gif": ("gif", None),
}


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; raise with its stderr if it fails."""
    done = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SVT_LOG": "1"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {done.stderr}")


def make_clip(
    path: Path,
    *,
    seconds: float = 1.0,
    size: tuple[int, int] = (160, 90),
    fps: int = 25,
    video: bool = True,
    audio: bool = True,
    channels: int = 1,
    video_codec: str | None = None,
    audio_codec: str | None = None,
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
) -> Path:
    """Write a clip (test pattern + 440 Hz tone) to `path`; its suffix picks the container."""
    default_video, default_audio = _DEFAULT_CODECS[path.suffix]
    args: list[str] = []
    if video:
        width, height = size
        source = f"testsrc=size={width}x{height}:rate={fps}:duration={seconds}"
        args += ["-f", "lavfi", "-i", source]
    if audio:
        layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
        tones = "|".join(f"sin({440 + 110 * n}*2*PI*t)" for n in range(channels))
        args += [
            "-f",
            "lavfi",
            "-i",
            f"aevalsrc={tones}:sample_rate=48000:channel_layout={layout}:duration={seconds}",
        ]
    if video:
        args += ["-c:v", video_codec or str(default_video), "-pix_fmt", pix_fmt]
    if audio:
        args += ["-c:a", audio_codec or str(default_audio)]
    target = path.with_name("unrotated-" + path.name) if rotation is not None else path
    ffmpeg(*args, str(target))
    if rotation is not None:
        ffmpeg("-display_rotation", str(rotation), "-i", str(target), "-c", "copy", str(path))
        target.unlink()
    return path


def make_with_cover_art(path: Path, *, seconds: float = 1.0) -> Path:
    """An MP3 with an attached picture (cover art), which is not a video stream."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        "color=c=blue:size=64x64:duration=0.04",
        "-map",
        "0",
        "-map",
        "1",
        "-c:a",
        "libmp3lame",
        "-c:v",
        "png",
        "-disposition:v",
        "attached_pic",
        str(path),
    )
    return path


def make_random_bytes(path: Path, size: int = 65536) -> Path:
    """Noise: no container at all."""
    path.write_bytes(os.urandom(size))
    return path


def make_text_file(path: Path) -> Path:
    """Plain text."""
    path.write_text("This is not a video.\nJust some lines of text.\n" * 50)
    return path


def make_hls_playlist(path: Path) -> Path:
    """An HLS playlist whose segment is a local file a server must never read for a client."""
    path.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    )
    return path


def make_concat_script(path: Path) -> Path:
    """An ffconcat script pointing at a local file."""
    path.write_text("ffconcat version 1.0\nfile '/etc/passwd'\nduration 10\n")
    return path


def make_y4m_bomb(path: Path) -> Path:
    """A YUV4MPEG2 header claiming 30000x30000 frames: gigabytes per frame if believed."""
    path.write_bytes(b"YUV4MPEG2 W30000 H30000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(4096))
    return path


def make_truncated(source: Path, path: Path, keep_fraction: float = 0.5) -> Path:
    """The first part of `source`; for an MP4 written without +faststart, the index is lost."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def make_padded_clip(path: Path, clip: Path, size: int) -> Path:
    """A valid MP4 of exactly `size` bytes: `clip` and one top-level `free` box (MP4's
    "skip me") of pseudo-random bytes, for tests that need a large file that still probes."""
    head = clip.read_bytes()
    padding = size - len(head)
    if not 8 <= padding < 2**32:
        raise ValueError("size out of range for one free box")
    block = random.Random(1234).randbytes(1024 * 1024)
    with path.open("wb") as handle:
        handle.write(head + struct.pack(">I4s", padding, b"free"))
        left = padding - 8
        while left > 0:
            left -= handle.write(block[: min(left, len(block))])
    return path

"""The ffmpeg runs of chunked encoding (API.md "Scheduling"): where a job's video is cut,
the run that encodes one part, the one that encodes the sound once, and the join.

A part covering output frames [a, b) of a constant-rate input seeks to half a frame
before frame a (`-ss` before `-i`: ffmpeg decodes from the key frame before it and drops
every frame before the seek point, so frame a is the first kept whatever the key frames)
and stops after b - a frames, through the job's own filter chain, sound left out; its
timestamps start at zero, and every part starts with a key frame of its own. The parts
are joined without encoding again (the concat demuxer, `-c copy`) and muxed with the sound,
encoded once in one piece so no gap or click sits at a join.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

from vidq.config import Settings
from vidq.media.command import EncodeSettings, build_command
from vidq.media.formats import MUXER_ARGS
from vidq.media.info import MediaInfo

CONCAT_LIST = "parts.ffconcat"
# Codecs whose streams the concat demuxer joins frame-exactly (each part starts with a
# key frame); the chunked path applies to single files of these only.
CHUNKED_CODECS = ("h264", "h265", "vp9", "av1")


def part_bounds(span_seconds: float, fps: float, chunk_seconds: float) -> list[tuple[int, int]]:
    """The output frames [a, b) of each part: about `chunk_seconds` each, equal in size;
    one part (no chunking) when the span is not longer than `chunk_seconds`."""
    total = round(span_seconds * fps)
    if span_seconds <= chunk_seconds or total < 2:
        return [(0, total)]
    count = min(total, max(2, round(span_seconds / chunk_seconds)))
    edges = [round(k * total / count) for k in range(count + 1)]
    return list(itertools.pairwise(edges))


def part_seek_seconds(start: float | None, first_frame: int, fps: float) -> float:
    """Where a part's decoding is cut in: half a frame before its first frame (so rounding
    cannot drop that frame nor keep the one before), from the job's own start."""
    base = start or 0.0
    return base + (first_frame - 0.5) / fps if first_frame > 0 else base


def part_command(
    ffmpeg: str,
    input_path: Path,
    output_path: Path,
    part_options: EncodeSettings,
    info: MediaInfo,
    settings: Settings,
    *,
    frames: int | None,
) -> list[str]:
    """The run that encodes one part's video: the job's options with `start` at the part's
    seek point (`part_seek_seconds`), no sound, and `frames` frames (None: to the job's end)."""
    argv = build_command(ffmpeg, input_path, output_path, part_options, info, settings)
    if "-vf" not in argv:
        raise ValueError("a chunked part needs the plain filter chain (-vf)")
    at = argv.index("-vf") + 1
    argv[at] = f"setpts=PTS-STARTPTS,{argv[at]}"  # each part's timestamps from zero
    if frames is not None:
        argv[-1:-1] = ["-frames:v", str(frames)]
    return argv


def audio_command(
    ffmpeg: str,
    input_path: Path,
    output_path: Path,
    audio_options: EncodeSettings,
    info: MediaInfo,
    settings: Settings,
    *,
    audio_filters: Sequence[str] = (),
) -> list[str]:
    """The run that encodes the job's sound once, in one piece (`audio_options`: the job's,
    with no video)."""
    return build_command(
        ffmpeg,
        input_path,
        output_path,
        audio_options,
        info,
        settings,
        audio_filters=audio_filters,
    )


def concat_list(names: Sequence[str]) -> str:
    """The concat demuxer's list of the parts (plain names, beside the list)."""
    for name in names:
        if "/" in name or "'" in name:
            raise ValueError(f"not a plain part name: {name!r}")
    return "ffconcat version 1.0\n" + "".join(f"file '{name}'\n" for name in names)


def join_command(
    ffmpeg: str,
    list_path: Path,
    audio_path: Path | None,
    output_path: Path,
    *,
    format: str,
    video_codec: str,
) -> list[str]:
    """The run that joins the parts as they are (`-c copy`) and muxes them with the sound."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-nostats", "-loglevel", "error"]
    argv += ["-progress", "pipe:1", "-protocol_whitelist", "file"]
    argv += ["-f", "concat", "-i", "file:" + str(list_path.absolute())]
    if audio_path is not None:
        argv += ["-i", "file:" + str(audio_path.absolute())]
    argv += ["-map", "0:v:0"]
    if audio_path is not None:
        argv += ["-map", "1:a:0"]
    argv += ["-c", "copy"]
    if video_codec == "h265" and format in ("mp4", "mov"):
        argv += ["-tag:v", "hvc1"]
    return [*argv, *MUXER_ARGS[format], "file:" + str(output_path.absolute())]

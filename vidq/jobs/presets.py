"""Presets: the named sets of option defaults a conversion can start from (`GET /presets`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    """A named set of option defaults, as listed by `GET /presets`."""

    name: str
    description: str
    options: dict[str, Any]


DEFAULT_PRESET = "mp4-h264"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "mp4-h264",
            "MP4 with H.264 (High profile, yuv420p) and AAC, +faststart: plays in every"
            " browser. Keeps the input's size, rounded to even numbers.",
            {
                "format": "mp4",
                "video_codec": "h264",
                "audio_codec": "aac",
                "crf": 23,
                "audio_bitrate": "128k",
            },
        ),
        Preset(
            "mp4-h264-720p",
            "Like mp4-h264, scaled down so that its short side is 720 pixels (1280x720"
            " landscape, 720x1280 portrait), never up, keeping the aspect ratio.",
            {
                "format": "mp4",
                "video_codec": "h264",
                "audio_codec": "aac",
                "crf": 23,
                "audio_bitrate": "128k",
                "short_side": 720,
            },
        ),
        Preset(
            "mp4-h265",
            "MP4 with H.265/HEVC (tagged hvc1 for Apple players) at constant quality 28, and"
            " AAC; not every browser plays it.",
            {
                "format": "mp4",
                "video_codec": "h265",
                "audio_codec": "aac",
                "crf": 28,
                "audio_bitrate": "128k",
            },
        ),
        Preset(
            "webm-vp9",
            "WebM with VP9 and Opus, constant quality.",
            {
                "format": "webm",
                "video_codec": "vp9",
                "audio_codec": "opus",
                "crf": 32,
                "audio_bitrate": "96k",
            },
        ),
        Preset(
            "mp4-av1",
            "MP4 with AV1 (SVT-AV1) at constant quality 35, and AAC, for browsers that play"
            " AV1; slower to encode than H.264.",
            {
                "format": "mp4",
                "video_codec": "av1",
                "audio_codec": "aac",
                "crf": 35,
                "audio_bitrate": "128k",
            },
        ),
        Preset(
            "gif",
            "Animated GIF preview: 10 frames per second, at most 480 pixels wide, no sound.",
            {"format": "gif", "width": 480, "fps": 10},
        ),
        Preset(
            "mp3",
            "The sound only, as MP3 at 192 kbit/s.",
            {"format": "mp3", "audio_codec": "mp3", "audio_bitrate": "192k"},
        ),
        Preset(
            "m4a",
            "The sound only, as AAC at 128 kbit/s in an M4A file.",
            {"format": "m4a", "audio_codec": "aac", "audio_bitrate": "128k"},
        ),
        Preset(
            "hls",
            "An HLS package: H.264 renditions of the default ladder (short sides of"
            " 1080/720/480/360 pixels, not above the input's) and AAC stereo audio, in fMP4"
            " segments, master.m3u8.",
            {"format": "hls"},
        ),
        Preset(
            "dash",
            "A DASH package: the same ladder and audio in fMP4 segments, manifest.mpd.",
            {"format": "dash"},
        ),
        Preset(
            "cmaf",
            "HLS and DASH over one set of CMAF segments: master.m3u8 and manifest.mpd.",
            {"format": "cmaf"},
        ),
        Preset(
            "poster",
            "A JPEG still only: a representative frame 10 % into the video, at its size.",
            {"format": "jpg"},
        ),
    )
}

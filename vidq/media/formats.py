"""What vidq reads and writes: formats, codecs, their ffmpeg encoders and muxers, limits.

The facts about media that hold for every request: the output formats and the codecs each
can hold (and uses by default), which input codecs `copy` may put in each, the ffmpeg
encoder and muxer settings behind each name, file extensions and media types, the input
containers the prober and ffmpeg may open, and the ranges of sizes, frame rates, bitrates
and quality. `vidq.jobs.options` validates a request against these tables and
`vidq.media.command` turns them into ffmpeg arguments.
"""

from __future__ import annotations

FORMATS = ("mp4", "webm", "mkv", "mov", "gif", "mp3", "m4a", "jpg", "hls", "dash", "cmaf")
# Adaptive-bitrate packages (vidq.media.package): many files, H.264 ladder + AAC.
PACKAGE_FORMATS = ("hls", "dash", "cmaf")
VIDEO_CODECS = ("h264", "h265", "vp9", "av1", "copy", "none")
AUDIO_CODECS = ("aac", "opus", "mp3", "copy", "none")

# The gif format's video codec. It is implied by format=gif; clients need not name it,
# but a resolved job's options say `"video_codec": "gif"` and may be sent back as is.
GIF_CODEC = "gif"
# The jpg format's (a still only) video codec, implied by format=jpg like gif's.
STILL_CODEC = "jpeg"

MIN_WIDTH, MAX_WIDTH = 16, 7680
MIN_HEIGHT, MAX_HEIGHT = 16, 4320
MIN_FPS, MAX_FPS = 1.0, 120.0
MIN_VIDEO_BITRATE, MAX_VIDEO_BITRATE = 16_000, 200_000_000
GIF_DEFAULT_FPS, GIF_MAX_FPS = 10.0, 50.0

# Address space each video encoder needs (ffmpeg's VmPeak, the limit VIDQ_FFMPEG_MEMORY_BYTES
# holds it to), as (base MiB, MiB per megapixel of output): measured with the settings below
# over 50 frames at 1280x720, 1920x1080 and 3840x2160 with two threads (bench/README.md),
# where it grows linearly with the output's pixels. More threads need somewhat more.
ENCODER_MEMORY_MIB: dict[str, tuple[float, float]] = {
    "h264": (970.0, 170.0),
    "h265": (950.0, 175.0),
    "vp9": (830.0, 120.0),
    "av1": (1310.0, 200.0),
    GIF_CODEC: (970.0, 170.0),
}
ENCODER_MEMORY_MARGIN = 1.1


def encoder_memory_bytes(video_codec: str, width: int, height: int) -> int:
    """About how much address space encoding `width`x`height` with `video_codec` takes
    (0 for `copy` and `none`, which encode nothing)."""
    if video_codec not in ENCODER_MEMORY_MIB:
        return 0
    base_mib, per_megapixel_mib = ENCODER_MEMORY_MIB[video_codec]
    mib = base_mib + per_megapixel_mib * width * height / 1e6
    return int(mib * ENCODER_MEMORY_MARGIN * 1024 * 1024)


# Encoder settings: quick enough for a shared server, good enough for people.
VIDEO_ENCODER_ARGS: dict[str, tuple[str, ...]] = {
    "h264": ("-c:v", "libx264", "-preset", "fast", "-profile:v", "high"),
    "h265": ("-c:v", "libx265", "-preset", "fast", "-x265-params", "log-level=error"),
    "vp9": ("-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", "4", "-row-mt", "1"),
    "av1": ("-c:v", "libsvtav1", "-preset", "8"),
}
AUDIO_ENCODER_NAMES: dict[str, str] = {"aac": "aac", "opus": "libopus", "mp3": "libmp3lame"}

# Codecs that re-encode video / audio (as opposed to "copy" and "none").
VIDEO_ENCODERS: tuple[str, ...] = (*VIDEO_ENCODER_ARGS, GIF_CODEC)
AUDIO_ENCODERS: tuple[str, ...] = tuple(AUDIO_ENCODER_NAMES)

CRF_RANGES: dict[str, tuple[int, int]] = {
    "h264": (0, 51),
    "h265": (0, 51),
    "vp9": (0, 63),
    "av1": (0, 63),
}
DEFAULT_CRF: dict[str, int] = {"h264": 23, "h265": 28, "vp9": 32, "av1": 35}

AUDIO_BITRATE_RANGES: dict[str, tuple[int, int]] = {
    "aac": (16_000, 512_000),
    "opus": (6_000, 512_000),
    "mp3": (32_000, 320_000),
}
DEFAULT_AUDIO_BITRATE: dict[str, str] = {"aac": "128k", "opus": "96k", "mp3": "192k"}

CODEC_LABELS = {"h265": "H.265", "h264": "H.264", "vp9": "VP9", "av1": "AV1"}

# What each output format can hold, and what it uses when nothing else is said.
FORMAT_VIDEO_CODECS: dict[str, tuple[str, ...]] = {
    "mp4": ("h264", "h265", "vp9", "av1", "copy", "none"),
    "mov": ("h264", "h265", "copy", "none"),
    "mkv": ("h264", "h265", "vp9", "av1", "copy", "none"),
    "webm": ("vp9", "av1", "copy", "none"),
    "gif": (GIF_CODEC,),
    "mp3": ("none",),
    "m4a": ("none",),
    "jpg": (STILL_CODEC,),
    "hls": ("h264",),
    "dash": ("h264",),
    "cmaf": ("h264",),
}
FORMAT_AUDIO_CODECS: dict[str, tuple[str, ...]] = {
    "mp4": ("aac", "opus", "mp3", "copy", "none"),
    "mov": ("aac", "mp3", "copy", "none"),
    "mkv": ("aac", "opus", "mp3", "copy", "none"),
    "webm": ("opus", "copy", "none"),
    "gif": ("none",),
    "mp3": ("mp3", "copy"),
    "m4a": ("aac", "copy"),
    "jpg": ("none",),
    "hls": ("aac", "none"),
    "dash": ("aac", "none"),
    "cmaf": ("aac", "none"),
}
FORMAT_DEFAULT_CODECS: dict[str, tuple[str, str]] = {
    "mp4": ("h264", "aac"),
    "mov": ("h264", "aac"),
    "mkv": ("h264", "aac"),
    "webm": ("vp9", "opus"),
    "gif": (GIF_CODEC, "none"),
    "mp3": ("none", "mp3"),
    "m4a": ("none", "aac"),
    "jpg": (STILL_CODEC, "none"),
    "hls": ("h264", "aac"),
    "dash": ("h264", "aac"),
    "cmaf": ("h264", "aac"),
}

# Input codecs (as probed) that `copy` may put in each format; None: anything.
COPYABLE_VIDEO: dict[str, frozenset[str] | None] = {
    "mp4": frozenset({"h264", "hevc", "av1", "vp9", "mpeg4"}),
    "mov": frozenset({"h264", "hevc", "mpeg4", "mjpeg", "prores"}),
    "mkv": None,
    "webm": frozenset({"vp8", "vp9", "av1"}),
}
COPYABLE_AUDIO: dict[str, frozenset[str] | None] = {
    "mp4": frozenset({"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"}),
    "mov": frozenset({"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le"}),
    "mkv": None,
    "webm": frozenset({"opus", "vorbis"}),
    "mp3": frozenset({"mp3"}),
    "m4a": frozenset({"aac", "alac"}),
}

# How ffmpeg writes each format.
MUXER_ARGS: dict[str, tuple[str, ...]] = {
    "mp4": ("-f", "mp4", "-movflags", "+faststart"),
    "mov": ("-f", "mov", "-movflags", "+faststart"),
    "m4a": ("-f", "ipod", "-movflags", "+faststart"),
    "mkv": ("-f", "matroska"),
    "webm": ("-f", "webm"),
    "gif": ("-f", "gif", "-loop", "0"),
    "mp3": ("-f", "mp3"),
}

# A package is downloaded as one ZIP of its files.
_EXTENSIONS = {f: "zip" if f in PACKAGE_FORMATS else f for f in FORMATS}
_CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "hls": "application/zip",
    "dash": "application/zip",
    "cmaf": "application/zip",
    "mp4": "video/mp4",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
    "mov": "video/quicktime",
    "gif": "image/gif",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
}

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


def format_extension(fmt: str) -> str:
    """The file extension of a format's output, without the dot: "mp4", "webm", "mp3", ..."""
    return _EXTENSIONS[fmt]


def format_content_type(fmt: str) -> str:
    """The media type of a format's output: "video/mp4", "audio/mpeg", "image/gif", ..."""
    return _CONTENT_TYPES[fmt]

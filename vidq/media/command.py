"""The ffmpeg command line for one conversion, built from validated options and a probe.

Only values that passed `resolve_options` (or came from the probe) reach the argv, each
as its own argument: nothing is ever parsed by a shell. The input is opened with the
`file` protocol only and the demuxer the probe found, so ffmpeg reads the file the way
it was checked. Sizes are computed here, in Python, from the probed (displayed) size after
crop and rotate; the video filter chain, in its one order, comes from `vidq.media.filters`.
The options are read through the `EncodeSettings` protocol; the encoder and muxer
arguments come from `vidq.media.formats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from vidq.config import Settings
from vidq.media.filters import (
    SDR_COLOUR_ARGS,
    PictureSettings,
    keeps_hdr,
    output_pix_fmt,
    picture_size,
    tone_maps,
    video_filter_parts,
)
from vidq.media.formats import (
    ALLOWED_DEMUXERS,
    AUDIO_ENCODER_NAMES,
    GIF_CODEC,
    MAX_HEIGHT,
    MAX_WIDTH,
    MUXER_ARGS,
    VIDEO_ENCODER_ARGS,
)
from vidq.media.hdr import keep_hdr_args
from vidq.media.info import AudioInfo, MediaInfo, VideoInfo
from vidq.media.overlay_filters import (
    OUTPUT_LABEL,
    OverlayFiles,
    OverlaySettings,
    overlay_graph,
    overlay_inputs,
    subtitle_track_args,
)

_APPLE_FORMATS = ("mp4", "mov")

# The GIF palette is made per frame (stats_mode=single, new=1), so nothing waits for the
# whole video and memory stays flat whatever the length.
_GIF_PALETTE = (
    "split[frames][stats];[stats]palettegen=stats_mode=single[palette];"
    "[frames][palette]paletteuse=new=1"
)


class EncodeSettings(PictureSettings, OverlaySettings, Protocol):
    """The options a conversion asks for, as the command reads them (`ResolvedOptions` fits):
    the picture's and the overlays' options and these."""

    @property
    def format(self) -> str: ...
    @property
    def audio_codec(self) -> str: ...
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...
    @property
    def short_side(self) -> int | None: ...
    @property
    def upscale(self) -> bool: ...
    @property
    def crf(self) -> int | None: ...
    @property
    def video_bitrate(self) -> str | None: ...
    @property
    def audio_bitrate(self) -> str | None: ...
    @property
    def start(self) -> float | None: ...
    @property
    def end(self) -> float | None: ...


def input_command(
    ffmpeg: str,
    input_path: Path,
    info: MediaInfo,
    settings: Settings,
    *,
    start: float | None = None,
    progress: bool = True,
    autorotate: bool = True,
) -> list[str]:
    """An ffmpeg argv up to and including its one input: quiet, progress on stdout, the
    `file` protocol and the allowed demuxers only, the probed demuxer forced; with
    `autorotate=False` the picture is left as stored (`vidq.media.filters` turns it)."""
    if info.demuxer not in ALLOWED_DEMUXERS:
        raise ValueError(f"demuxer {info.demuxer!r} is not allowed")
    threads = ["-threads", str(settings.ffmpeg_threads)] if settings.ffmpeg_threads else []
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-nostats", "-loglevel", "error"]
    if progress:
        argv += ["-progress", "pipe:1"]
    argv += [
        "-protocol_whitelist",
        "file",  # the input is our own file; ffmpeg's progress pipe is not an input
        "-format_whitelist",
        ",".join(sorted(ALLOWED_DEMUXERS)),
        "-f",
        info.demuxer,
        *threads,
    ]
    if start:
        argv += ["-ss", seconds_arg(start)]
    if not autorotate:
        argv.append("-noautorotate")
    return [*argv, "-i", "file:" + str(input_path.absolute())]


def build_command(
    ffmpeg: str,
    input_path: Path,
    output_path: Path,
    options: EncodeSettings,
    info: MediaInfo,
    settings: Settings,
    overlays: OverlayFiles | None = None,
    *,
    audio_filters: Sequence[str] = (),
) -> list[str]:
    """The full ffmpeg argv converting `input_path` to `output_path` as the options say
    (one file: packages and stills have their own commands, `package` and `stills`), with
    the job's overlay files if it has any; `audio_filters` (a loudness normalisation) apply
    to the sound it re-encodes."""
    if options.format not in MUXER_ARGS:
        raise ValueError(f"the {options.format} format is not made by build_command")
    threads = ["-threads", str(settings.ffmpeg_threads)] if settings.ffmpeg_threads else []
    new_pictures = info.video is not None and options.video_codec not in ("copy", "none")
    argv = input_command(
        ffmpeg, input_path, info, settings, start=options.start, autorotate=not new_pictures
    )
    argv += overlay_inputs(overlays)

    if info.video is not None and options.video_codec != "none":
        argv += _video_args(options, info.video, overlays)
    else:
        argv += ["-vn"]
    if info.audio is not None and options.audio_codec != "none":
        argv += ["-map", "0:a:0", *_audio_args(options, info.audio, audio_filters)]
    else:
        argv += ["-an"]
    argv += subtitle_track_args(options.format, overlays)
    if options.end is not None:
        argv += ["-t", seconds_arg(options.end - (options.start or 0.0))]
    argv += [*threads, *MUXER_ARGS[options.format], "file:" + str(output_path.absolute())]
    return argv


def _picture(
    before: list[str],
    after: str,
    options: EncodeSettings,
    overlays: OverlayFiles | None,
    size: tuple[int, int],
) -> list[str]:
    """The filters and mapping of the picture: `before` (up to the scale to `size`), the
    overlays if any, then `after` (pixel format, palette)."""
    if overlays is None or not overlays.draws:
        return ["-map", "0:V:0", "-vf", ",".join([*before, after])]
    graph = overlay_graph(",".join(before), after, options, overlays, size)
    return ["-filter_complex", graph, "-map", OUTPUT_LABEL]


def _video_args(
    options: EncodeSettings, video: VideoInfo, overlays: OverlayFiles | None
) -> list[str]:
    if options.video_codec == "copy":
        apple_hevc = video.codec == "hevc" and options.format in _APPLE_FORMATS
        return ["-map", "0:V:0", "-c:v", "copy", *(["-tag:v", "hvc1"] if apple_hevc else [])]
    size = output_size(video, options)
    if options.video_codec == GIF_CODEC:
        before, after = video_filter_parts(options, video, size=size, scale_flags="lanczos")
        after_gif = ",".join([*after, _GIF_PALETTE])
        return [*_picture(before, after_gif, options, overlays, size), "-c:v", "gif"]
    pix_fmt = output_pix_fmt(options, video)
    before, after = video_filter_parts(options, video, size=size, pix_fmt=pix_fmt)
    encoder = list(VIDEO_ENCODER_ARGS[options.video_codec])
    if keeps_hdr(options, video):
        encoder = keep_hdr_args(options.video_codec, encoder, video)
    elif tone_maps(options, video):
        encoder += SDR_COLOUR_ARGS
    picture = _picture(before, ",".join(after), options, overlays, size)
    args = [*picture, *encoder, "-pix_fmt", pix_fmt]
    if options.video_bitrate is not None:
        args += ["-b:v", options.video_bitrate]
    elif options.crf is not None:
        args += ["-crf", str(options.crf)]
        if options.video_codec == "vp9":
            args += ["-b:v", "0"]  # constant quality, no bitrate cap
        if options.video_codec == "h264" and options.crf == 0:
            # Lossless H.264 exists only in the High 4:4:4 Predictive profile.
            args[args.index("-profile:v") + 1] = "high444"
    if options.video_codec == "h265" and options.format in _APPLE_FORMATS:
        args += ["-tag:v", "hvc1"]
    return args


def _audio_args(
    options: EncodeSettings, audio: AudioInfo, filters: Sequence[str] = ()
) -> list[str]:
    if options.audio_codec == "copy":
        return ["-c:a", "copy"]
    args = ["-af", ",".join(filters)] if filters else []
    args += ["-c:a", AUDIO_ENCODER_NAMES[options.audio_codec]]
    if options.audio_bitrate is not None:
        args += ["-b:a", options.audio_bitrate]
    if options.audio_codec in ("opus", "mp3") and audio.channels > 2:
        args += ["-ac", "2"]  # MP3 has no surround; Opus surround needs channel mapping
    return args


def output_size(video: VideoInfo, options: EncodeSettings) -> tuple[int, int]:
    """The output's width and height: fitted to the options, aspect kept, even, no upscale;
    from the picture as displayed, after `crop` and `rotate`."""
    src_width, src_height = picture_size(options, video)
    if options.width and options.height:  # fit inside the box
        scale = min(options.width / src_width, options.height / src_height)
    elif options.width:
        scale = options.width / src_width
    elif options.height:
        scale = options.height / src_height
    elif options.short_side:  # the short side, whichever it is: 720 gives 1280x720 or 720x1280
        scale = options.short_side / min(src_width, src_height)
    else:
        scale = 1.0
    if options.upscale:
        # However far up the client asks, stay within the largest size an option may name.
        long_side, short_side = max(src_width, src_height), min(src_width, src_height)
        scale = min(scale, max(1.0, min(MAX_WIDTH / long_side, MAX_HEIGHT / short_side)))
    else:
        scale = min(scale, 1.0)
    width_limits = [n for n in (options.width, None if options.upscale else src_width) if n]
    height_limits = [n for n in (options.height, None if options.upscale else src_height) if n]
    return _even(src_width * scale, width_limits), _even(src_height * scale, height_limits)


def _even(size: float, limits: list[int]) -> int:
    """The nearest even number of pixels, not above any limit (rounded down to even), >= 2."""
    value = 2 * int(size / 2 + 0.5)  # halves round up, not to even
    for limit in limits:
        value = min(value, limit - limit % 2)
    return max(2, value)


def seconds_arg(value: float) -> str:
    """Seconds as ffmpeg reads them (a plain decimal, no exponent)."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def expected_output_seconds(options: EncodeSettings, info: MediaInfo) -> float | None:
    """How long the output will be, for progress percent; None if the input's length is unknown."""
    end = options.end
    if info.duration_seconds is not None:
        end = info.duration_seconds if end is None else min(end, info.duration_seconds)
    if end is None:
        return None
    return max(0.0, end - (options.start or 0.0))


def job_timeout_seconds(info: MediaInfo, settings: Settings) -> float:
    """How long one conversion of this input may run before it is stopped."""
    return max(
        settings.job_timeout_min_seconds,
        settings.job_timeout_factor * (info.duration_seconds or 0.0),
    )

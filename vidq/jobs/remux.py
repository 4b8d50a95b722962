"""Smart remux: when the input already is what a job asks for, copy its streams.

A job for `mp4-h264` given an H.264 (yuv420p, a profile and level every browser plays)
+ AAC input gains nothing from a re-encode but a loss of quality and minutes of CPU: its
streams are copied into the new container instead (`-c copy`, `+faststart` for MP4 and
MOV, see `vidq.media.command`). `decide_remux` makes that decision once the input is
probed (at submission for an upload, after the import for a `source_url`), and the job
is stored with the options it runs with: its codecs resolved to `copy`. Its `result`
then says `remuxed: true` (`is_remuxed`).

A remux happens only when nothing asks for new pixels or samples (API.md): no size
change, fps, crf or bitrate given, trim (unless `trim=fast`), rotation metadata,
interlacing, HDR, or any of the picture, overlay and sound options in
`REENCODE_OPTIONS`; and `transcode=always` turns it off.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from vidq.jobs.options import ResolvedOptions, resolve_options
from vidq.media.command import output_size
from vidq.media.formats import COPYABLE_AUDIO, COPYABLE_VIDEO, PACKAGE_FORMATS
from vidq.media.info import AudioInfo, MediaInfo, VideoInfo


@dataclass(frozen=True)
class VideoAsIs:
    """A probed video stream that already is what a video codec's encoder would make."""

    codec: str  # as probed
    profiles: frozenset[str]
    max_level: int | None = None  # H.264's level_idc (52 = 5.2)


# Per codec a job may ask for. 8-bit 4:2:0 only, as the encoders write (command.py).
# H.264: the profiles every browser decodes (not 10-bit, 4:2:2, 4:4:4 nor plain Baseline
# with its FMO/ASO tools); levels up to 5.2, which x264 itself writes for 4K at 60 fps.
VIDEO_AS_IS: dict[str, VideoAsIs] = {
    "h264": VideoAsIs("h264", frozenset({"Constrained Baseline", "Main", "High"}), 52),
    "h265": VideoAsIs("hevc", frozenset({"Main"})),
    "vp9": VideoAsIs("vp9", frozenset({"Profile 0"})),
    "av1": VideoAsIs("av1", frozenset({"Main"})),
}
PIX_FMT_AS_IS = "yuv420p"
# Audio codecs (as probed) that stand for each one a job may ask for, where the format
# can hold them (`COPYABLE_AUDIO`): Vorbis is WebM's other sound, as good as Opus there.
AUDIO_AS_IS: dict[str, frozenset[str]] = {
    "aac": frozenset({"aac"}),
    "opus": frozenset({"opus", "vorbis"}),
    "mp3": frozenset({"mp3"}),
}
# The encoders of these mix surround down to stereo (command.py): a copy must not keep more.
STEREO_ONLY = ("opus", "mp3")

# Input containers whose timestamps a copy can carry into any output. AVI, FLV, MPEG-PS
# and ASF often lack presentation times (B-frames in AVI, ...): those are re-encoded.
REMUX_DEMUXERS = frozenset({"mov", "matroska", "mpegts", "mp3", "aac", "ogg"})

# Options that ask for new pixels or samples whenever they are not at their default (the
# value here).
REENCODE_OPTIONS: dict[str, object] = {
    "fps": None,
    "crop": None,
    "rotate": None,
    "flip": None,
    "watermark": False,
    "loudness": None,
    "quality_report": False,
    "target_vmaf": None,
}
# Given at all (or not the preset's), these ask for a new encoding at that quality.
QUALITY_OPTIONS = ("crf", "video_bitrate", "audio_bitrate")


@dataclass(frozen=True)
class RemuxDecision:
    """What a job runs with: `options` (codecs resolved to `copy` on a remux), and why."""

    options: ResolvedOptions
    remux: bool
    reason: str


def decide_remux(
    options: ResolvedOptions, info: MediaInfo, *, sent: Collection[str] = ()
) -> RemuxDecision:
    """Copy the input's streams instead of re-encoding them, if that gives what `options`
    ask for; `sent`: the names of the options the client gave (a crf or bitrate it gave
    asks for a new encoding even at the preset's value)."""
    reason = _why_encode(options, info, sent)
    if reason is not None:
        return RemuxDecision(options, False, reason)
    copied = options.model_copy(
        update={
            "video_codec": _copied(options.video_codec, info.video),
            "audio_codec": _copied(options.audio_codec, info.audio),
            "width": None,
            "height": None,
            "short_side": None,
            "upscale": False,
            "crf": None,
            "video_bitrate": None,
            "audio_bitrate": None,
            # No pictures are made: the picture options do not apply (as for video_codec=copy).
            "hdr": None,
            "deinterlace": None,
        }
    )
    return RemuxDecision(copied, True, f"the input already is what {options.preset} asks for")


def is_remuxed(options: ResolvedOptions, info: MediaInfo) -> bool:
    """Whether a single-file job copies every stream it keeps (re-encodes none)."""
    if options.format in (*PACKAGE_FORMATS, "gif", "jpg"):
        return False
    kept = [
        codec
        for codec, stream in ((options.video_codec, info.video), (options.audio_codec, info.audio))
        if _keeps(codec, stream)
    ]
    return bool(kept) and all(codec == "copy" for codec in kept)


def _keeps(codec: str, stream: VideoInfo | AudioInfo | None) -> bool:
    return stream is not None and codec != "none"


def _copied(codec: str, stream: VideoInfo | AudioInfo | None) -> str:
    """A kept stream's codec on a remux: copy (a stream left out or absent stays as it was)."""
    return "copy" if _keeps(codec, stream) else codec


def _why_encode(options: ResolvedOptions, info: MediaInfo, sent: Collection[str]) -> str | None:
    """Why this job must re-encode; None if a copy gives what it asks for."""
    fmt = options.format
    if options.transcode == "always":
        return "transcode=always"
    if fmt in (*PACKAGE_FORMATS, "gif", "jpg"):
        return f"the {fmt} format is always encoded"
    if (options.start is not None or options.end is not None) and options.trim != "fast":
        return "a trim is frame-exact only when re-encoded (trim=fast cuts at key frames)"
    for name, default in REENCODE_OPTIONS.items():
        if getattr(options, name) != default:
            return f"{name} asks for new pixels or samples"
    # Subtitles burned in are new pixels; a soft track is only one more stream to copy.
    if options.subtitles and options.subtitles_mode != "track":
        return "subtitles burned in ask for new pixels"
    if info.demuxer not in REMUX_DEMUXERS:
        return f"a {info.container} input's timestamps are not copied as they are"
    baseline = _preset_baseline(options)
    for name in QUALITY_OPTIONS:
        value = getattr(options, name)
        if value is not None and (name in sent or value != getattr(baseline, name)):
            return f"{name} asks for a new encoding"
    if _keeps(options.video_codec, info.video):
        assert info.video is not None
        why = _video_differs(options, info.video)
        if why is not None:
            return why
    if _keeps(options.audio_codec, info.audio):
        assert info.audio is not None
        why = _audio_differs(options, info.audio)
        if why is not None:
            return why
    return None


def _preset_baseline(options: ResolvedOptions) -> ResolvedOptions:
    """What the preset alone gives for these format and codecs: crf, bitrates."""
    return resolve_options(
        {
            "preset": options.preset,
            "format": options.format,
            "video_codec": options.video_codec,
            "audio_codec": options.audio_codec,
        }
    )


def _video_differs(options: ResolvedOptions, video: VideoInfo) -> str | None:
    """Why the input's video is not what `options` make of it; None if it is."""
    codec = options.video_codec
    if codec == "copy":
        return None
    if video.rotation:
        return "rotation metadata is applied by re-encoding"
    if video.interlaced and options.deinterlace != "off":
        return "an interlaced input is deinterlaced"
    if video.hdr and options.hdr != "keep":
        return "an HDR input is tone-mapped"
    if output_size(video, options) != (video.width, video.height):
        return "the size changes"
    target = VIDEO_AS_IS.get(codec)
    copyable = COPYABLE_VIDEO.get(options.format)
    if target is None or video.codec != target.codec:
        return f"the input's video is {video.codec}, not {codec}"
    if copyable is not None and video.codec not in copyable:
        return f"the {options.format} format cannot hold {video.codec} as is"
    if video.pix_fmt != PIX_FMT_AS_IS:
        return f"the input's pixels are {video.pix_fmt}, not {PIX_FMT_AS_IS}"
    if video.profile not in target.profiles:
        return f"the input's {codec} profile is {video.profile}"
    if target.max_level is not None and (video.level is None or video.level > target.max_level):
        return f"the input's {codec} level is {video.level}"
    return None


def _audio_differs(options: ResolvedOptions, audio: AudioInfo) -> str | None:
    """Why the input's sound is not what `options` make of it; None if it is."""
    codec = options.audio_codec
    if codec == "copy":
        return None
    copyable = COPYABLE_AUDIO.get(options.format)
    if audio.codec not in AUDIO_AS_IS.get(codec, ()):
        return f"the input's audio is {audio.codec}, not {codec}"
    if copyable is not None and audio.codec not in copyable:
        return f"the {options.format} format cannot hold {audio.codec} as is"
    if codec in STEREO_ONLY and audio.channels > 2:
        return f"{codec} is made in stereo; the input has {audio.channels} channels"
    return None

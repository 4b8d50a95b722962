"""Streaming packages: an adaptive-bitrate ladder as HLS and/or DASH over one set of CMAF segments.

One ffmpeg run decodes the input once, splits the picture into one scaled H.264 stream per
rendition and one AAC stereo stream, forces an IDR frame at every segment boundary (so that
segments align across renditions), and writes fMP4 segments with ffmpeg's DASH muxer, which
also writes HLS media playlists over the same segments. `finish_package` then names the
folders after the renditions (`720p/seg_00001.m4s`), writes `master.m3u8` with the
bandwidth measured from the segments made (peak and average, audio included), keeps the
manifests the format asks for, and lists every file with its role.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vidq.media.info import MediaInfo, VideoInfo

# The default ladder, as sizes of the short side, and the video bitrate of each (bits/s).
LADDER_BITRATES: dict[int, int] = {1080: 5_000_000, 720: 2_800_000, 480: 1_400_000, 360: 800_000}
DEFAULT_LADDER = tuple(LADDER_BITRATES)
AUDIO_BITRATE = 128_000
DEFAULT_SEGMENT_SECONDS = 6.0
MIN_SEGMENT_SECONDS, MAX_SEGMENT_SECONDS = 2.0, 10.0
PACKAGE_FORMATS = ("hls", "dash", "cmaf")

MANIFEST_HLS = "master.m3u8"
MANIFEST_DASH = "manifest.mpd"
AUDIO_NAME = "audio"

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".mp4": "video/mp4",
    ".m4s": "video/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt",
}


@dataclass(frozen=True)
class Rendition:
    """One rung of the ladder: its name (`720p`), its picture size and its video bitrate."""

    name: str
    width: int
    height: int
    bitrate: int


@dataclass(frozen=True)
class PackageFile:
    """One file of a package, relative to the package's folder."""

    path: str
    role: str
    size_bytes: int
    content_type: str


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def ladder_bitrate(short_side: int, width: int, height: int) -> int:
    """The ladder's bitrate for a size: the table's, else 720p's scaled by pixel count."""
    if short_side in LADDER_BITRATES:
        return LADDER_BITRATES[short_side]
    return max(100_000, round(LADDER_BITRATES[720] * (width * height) / (1280 * 720)))


def plan_ladder(video: VideoInfo, sizes: Sequence[int] | None, *, upscale: bool) -> list[Rendition]:
    """The renditions for an input: `sizes` of the short side (default: the ladder's sizes not
    above the input's), largest first; sizes above the input's are skipped unless `upscale`,
    and an input below every size gets one rendition of its own size."""
    short = min(video.width, video.height)
    wanted = list(sizes) if sizes else [s for s in DEFAULT_LADDER if s <= short]
    if not upscale:
        wanted = [s for s in wanted if s <= short]
    if not wanted:
        wanted = [_even(short)]
    renditions = []
    for size in sorted(set(wanted), reverse=True):
        scale = size / short
        width, height = _even(video.width * scale), _even(video.height * scale)
        if video.width < video.height:
            width = _even(size)
        else:
            height = _even(size)
        renditions.append(Rendition(f"{size}p", width, height, ladder_bitrate(size, width, height)))
    return renditions


def segment_gop(segment_seconds: float, fps: float | None) -> int:
    """Frames between key frames: one segment's worth, so regular key frames fall on the
    forced ones at segment boundaries."""
    return max(1, round(segment_seconds * (fps or 30.0)))


def package_args(
    info: MediaInfo,
    renditions: list[Rendition],
    *,
    segment_seconds: float,
    fps: float | None,
    out_dir: Path,
    span_seconds: float | None = None,
    picture: Sequence[str] = (),
    colour: Sequence[str] = (),
    drawn: tuple[str, str] = ("", "[0:V:0]"),
    audio_filters: Sequence[str] = (),
) -> list[str]:
    """ffmpeg's arguments after the input: the filter graph, the encoders and the muxer.

    `picture`: the job's picture chain up to the scaler (`vidq.media.filters.still_filters`;
    the input is then opened with autorotate off), `colour`: the encoder's colour tags.
    Folders `r0`, `r1`, … (one per stream, in stream order) are made in `out_dir` for the
    muxer, which does not make them; `finish_package` renames them. `drawn`: a graph that
    makes the picture to split (`picture`, then the overlays drawn on it) and its label;
    unless it is given, the picture to split is `picture` alone."""
    args: list[str] = []
    streams = 0
    if info.video is not None and renditions:
        before = "".join(f"{f}," for f in picture)
        rate = f"fps={fps:g}," if fps else ""
        outputs = "".join(f"[v{n}]" for n in range(len(renditions)))
        drawn_graph, source = drawn
        if drawn_graph:  # the overlays drawn on the picture (after `picture`), then split
            graph = [drawn_graph, f"{source}{rate}split={len(renditions)}{outputs}"]
        else:
            graph = [f"[0:V:0]{before}{rate}split={len(renditions)}{outputs}"]
        for n, r in enumerate(renditions):
            # No setsar: scale sets each rendition's sample aspect ratio to keep the input's
            # display aspect exactly (854x480 is not quite 16:9), and a DASH adaptation set
            # must have one aspect ratio (setsar=1 would break it; setsar=N/M rounds).
            graph.append(f"[v{n}]scale={r.width}:{r.height}:flags=bicubic,format=yuv420p[o{n}]")
        args += ["-filter_complex", ";".join(graph)]
        for n in range(len(renditions)):
            args += ["-map", f"[o{n}]"]
        gop = segment_gop(segment_seconds, fps or info.video.fps)
        args += ["-c:v", "libx264", "-preset", "fast", "-profile:v", "high", "-pix_fmt", "yuv420p"]
        args += colour
        for n, r in enumerate(renditions):
            args += [
                f"-b:v:{n}",
                str(r.bitrate),
                f"-maxrate:v:{n}",
                str(round(r.bitrate * 1.1)),
                f"-bufsize:v:{n}",
                str(round(r.bitrate * 1.5)),
            ]
        args += [
            "-g",
            str(gop),
            "-keyint_min",
            str(gop),
            "-sc_threshold",
            "0",
            "-force_key_frames",
            f"expr:gte(t,n_forced*{segment_seconds:g})",
        ]
        streams += len(renditions)
    if info.audio is not None:
        args += ["-map", "0:a:0"]
        filters = list(audio_filters)
        if info.video is not None and renditions and span_seconds:
            # The sound ends two AAC frames before the picture: AAC's last frame runs past
            # the end otherwise, and becomes a last audio segment of a few milliseconds
            # that starts after the video ends, which hls.js then never finishes playing.
            tail = 2048 / (info.audio.sample_rate or 48000)
            filters.append(f"atrim=duration={max(0.1, span_seconds - tail):.6f}")
        if filters:
            args += ["-af", ",".join(filters)]
        args += ["-c:a", "aac", "-b:a", str(AUDIO_BITRATE), "-ac", "2"]
        streams += 1
    sets = []
    if info.video is not None and renditions:
        sets.append("id=0,streams=v")
    if info.audio is not None:
        sets.append(f"id={len(sets)},streams=a")
    for n in range(streams):
        (out_dir / f"r{n}").mkdir(parents=True, exist_ok=True)
    args += [
        "-f",
        "dash",
        "-seg_duration",
        f"{segment_seconds:g}",
        "-use_template",
        "1",
        "-use_timeline",
        "0",
        "-hls_playlist",
        "1",
        "-adaptation_sets",
        " ".join(sets),
        "-init_seg_name",
        "r$RepresentationID$/init.mp4",
        "-media_seg_name",
        "r$RepresentationID$/seg_$Number%05d$.m4s",
    ]
    return args


@dataclass
class _Stream:
    index: int
    name: str
    playlist: str
    codecs: str
    segments: list[tuple[float, int]]  # (seconds, bytes)

    @property
    def peak_bits_per_second(self) -> int:
        return max(
            (round(8 * size / max(seconds, 0.001)) for seconds, size in self.segments), default=0
        )

    @property
    def average_bits_per_second(self) -> int:
        seconds = sum(s for s, _ in self.segments)
        return round(8 * sum(b for _, b in self.segments) / seconds) if seconds else 0


_REPRESENTATION = re.compile(r'<Representation id="(\d+)"[^>]*?codecs="([^"]+)"')


def finish_package(
    out_dir: Path,
    kind: str,
    renditions: list[Rendition],
    *,
    has_audio: bool,
    fps: float | None,
) -> list[PackageFile]:
    """Name, measure and list what ffmpeg wrote in `out_dir`; keep the manifests `kind` asks for."""
    mpd_path = out_dir / MANIFEST_DASH
    mpd = mpd_path.read_text()
    codecs = {int(i): c for i, c in _REPRESENTATION.findall(mpd)}
    names = [r.name for r in renditions] + ([AUDIO_NAME] if has_audio else [])
    streams: list[_Stream] = []
    for index, name in enumerate(names):
        (out_dir / f"r{index}").rename(out_dir / name)
        source = out_dir / f"media_{index}.m3u8"
        lines = []
        segments: list[tuple[float, int]] = []
        duration = 0.0
        for line in source.read_text().splitlines():
            if line.startswith("#EXT-X-PROGRAM-DATE-TIME"):
                continue
            line = line.replace(f"r{index}/", f"{name}/")
            if line.startswith("#EXTINF:"):
                duration = float(line[len("#EXTINF:") :].split(",")[0])
            elif line and not line.startswith("#"):
                segments.append((duration, (out_dir / line).stat().st_size))
            lines.append(line)
        (out_dir / f"{name}.m3u8").write_text("\n".join(lines) + "\n")
        source.unlink()
        streams.append(_Stream(index, name, f"{name}.m3u8", codecs.get(index, ""), segments))
    # The DASH manifest: each representation's own folder instead of r<id>.
    for index, name in enumerate(names):

        def own_folder(match: re.Match[str], name: str = name) -> str:
            return match.group(1).replace("r$RepresentationID$/", f"{name}/")

        mpd = re.sub(
            rf'(<Representation id="{index}".*?</Representation>)', own_folder, mpd, flags=re.S
        )
    mpd_path.write_text(mpd)
    (out_dir / MANIFEST_HLS).write_text(_master_playlist(streams, renditions, has_audio, fps))
    if kind == "hls":
        mpd_path.unlink()
    elif kind == "dash":
        for stream in streams:
            (out_dir / stream.playlist).unlink()
        (out_dir / MANIFEST_HLS).unlink()
    return list_files(out_dir)


def _master_playlist(
    streams: list[_Stream], renditions: list[Rendition], has_audio: bool, fps: float | None
) -> str:
    audio = streams[-1] if has_audio else None
    videos = streams[: len(renditions)]
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None and videos:
        lines.append(
            '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",DEFAULT=YES,'
            f'AUTOSELECT=YES,CHANNELS="2",URI="{audio.playlist}"'
        )
    for stream, rendition in zip(videos, renditions, strict=True):
        peak, average = stream.peak_bits_per_second, stream.average_bits_per_second
        codecs = stream.codecs
        if audio is not None:
            # The peak with its audio: the larger of the two peaks added and of each
            # segment's video and audio together over the video segment's duration
            # (the segments are cut at the same times, but the last may be very short).
            together = max(
                (
                    round(8 * (v_bytes + a_bytes) / max(seconds, 0.001))
                    for (seconds, v_bytes), (_, a_bytes) in zip(
                        stream.segments, audio.segments, strict=False
                    )
                ),
                default=0,
            )
            peak = max(peak + audio.peak_bits_per_second, together)
            average += audio.average_bits_per_second
            codecs = f"{codecs},{audio.codecs}"
        attributes = [
            f"BANDWIDTH={peak}",
            f"AVERAGE-BANDWIDTH={average}",
            f"RESOLUTION={rendition.width}x{rendition.height}",
            f'CODECS="{codecs}"',
        ]
        if fps:
            attributes.append(f"FRAME-RATE={fps:.3f}")
        if audio is not None:
            attributes.append('AUDIO="audio"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), stream.playlist]
    if audio is not None and not videos:
        lines += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={audio.peak_bits_per_second},"
            f'AVERAGE-BANDWIDTH={audio.average_bits_per_second},CODECS="{audio.codecs}"',
            audio.playlist,
        ]
    return "\n".join(lines) + "\n"


def _role(path: str) -> str:
    if path in (MANIFEST_HLS, MANIFEST_DASH):
        return "manifest"
    if path.endswith(".m3u8"):
        return "playlist"
    if path.endswith("/init.mp4"):
        return "init"
    if path.endswith(".m4s"):
        return "segment"
    if path == "poster.jpg":
        return "poster"
    if path == "storyboard.jpg":
        return "storyboard"
    if path == "storyboard.vtt":
        return "storyboard_vtt"
    if path.endswith(".vtt"):
        return "subtitles"
    return "main"


def content_type_of(path: str) -> str:
    """The media type a file of a package is served with."""
    return CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")


def list_files(out_dir: Path) -> list[PackageFile]:
    """Every file under `out_dir`, with its role, size and media type, in a stable order."""
    files = []
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(out_dir).as_posix()
        files.append(
            PackageFile(relative, _role(relative), path.stat().st_size, content_type_of(relative))
        )
    return files

"""Overlays in the ffmpeg command: a watermark image and subtitles, burned in or as a track.

The one hook the video filter chain calls: given the chain so far (everything up to and
including the scale, whose size it is told) and what follows it (the pixel format, a GIF's
palette), `overlay_graph` returns the whole `-filter_complex` with the watermark overlaid
and the subtitles drawn in between; `overlay_inputs` gives the extra inputs it reads (the
watermark, a subtitles track), to put right after the main input. A soft subtitle track is
mapped by `subtitle_track_args`.

The files are the job's own copies in its scratch folder (`OverlayFiles`): the watermark
as checked at submission, opened with its demuxer forced and the `file` protocol only;
the subtitles as vidq rewrote them (plain ASS, one shipped font, `vidq.media.subtitle_files`),
read by libass (`ass` filter, whose fonts come from `FONTS_DIR` only) or by the `ass`
demuxer for a track.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vidq.media.subtitle_files import FONTS_DIR

WATERMARK_DEMUXERS = ("jpeg_pipe", "png_pipe")
# How each container holds a soft subtitle track.
TRACK_CODECS = {"mp4": "mov_text", "mov": "mov_text", "webm": "webvtt", "mkv": "ass"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OUTPUT_LABEL = "[vout]"


class OverlaySettings(Protocol):
    """The overlay options, as the command reads them (`ResolvedOptions` fits)."""

    @property
    def watermark(self) -> bool: ...
    @property
    def watermark_position(self) -> str | None: ...
    @property
    def watermark_margin(self) -> float | None: ...
    @property
    def watermark_scale(self) -> float | None: ...
    @property
    def watermark_opacity(self) -> float | None: ...
    @property
    def subtitles(self) -> bool: ...
    @property
    def subtitles_mode(self) -> str | None: ...


@dataclass(frozen=True)
class OverlayFiles:
    """A job's overlay files, ready in its scratch folder (None: the job has none)."""

    watermark: Path | None = None
    subtitles: Path | None = None  # ASS, its times already shifted by the job's start
    subtitles_vtt: Path | None = None  # the same as WebVTT, for an HLS rendition
    burn_subtitles: bool = True  # False: a soft track instead

    @property
    def draws(self) -> bool:
        """Whether anything is drawn on the picture."""
        return self.watermark is not None or (self.subtitles is not None and self.burn_subtitles)

    @property
    def track(self) -> Path | None:
        """The subtitles file to add as a soft track, if any."""
        return None if self.burn_subtitles else self.subtitles


def watermark_demuxer(path: Path) -> str:
    """The demuxer that reads a checked watermark: PNG by its signature, else JPEG."""
    with path.open("rb") as file:
        return "png_pipe" if file.read(8) == _PNG_SIGNATURE else "jpeg_pipe"


def _input(demuxer: str, path: Path) -> list[str]:
    return [
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        demuxer,
        "-f",
        demuxer,
        "-i",
        "file:" + str(path.absolute()),
    ]


def overlay_inputs(files: OverlayFiles | None) -> list[str]:
    """The extra inputs (after the main input, index 0): the watermark if any (index 1),
    then a soft subtitle track if any."""
    if files is None:
        return []
    argv: list[str] = []
    if files.watermark is not None:
        argv += _input(watermark_demuxer(files.watermark), files.watermark)
    if files.track is not None:
        argv += _input("ass", files.track)
    return argv


def escape_filter_path(path: Path) -> str:
    """A path as a filter option's value inside a filter graph (both levels of escaping)."""
    value = str(path.absolute())
    for char in ("\\", "'", ":"):
        value = value.replace(char, "\\" + char)
    for char in ("\\", "'", "[", "]", ",", ";"):
        value = value.replace(char, "\\" + char)
    return value


def _position(position: str, margin: int) -> tuple[str, str]:
    x = {"left": str(margin), "right": f"main_w-overlay_w-{margin}"}
    y = {"top": str(margin), "bottom": f"main_h-overlay_h-{margin}"}
    if position == "center":
        return "(main_w-overlay_w)/2", "(main_h-overlay_h)/2"
    vertical, horizontal = position.split("-")
    return x[horizontal], y[vertical]


def overlay_graph(
    before: str,
    after: str,
    options: OverlaySettings,
    files: OverlayFiles,
    size: tuple[int, int],
    *,
    source: str = "[0:V:0]",
    output: str = OUTPUT_LABEL,
) -> str:
    """The filter graph `source` → `before` → watermark → subtitles → `after` → `output`:
    `before` ends at the picture's final `size` (width, height); either chain may be empty."""
    width, _ = size
    graph: list[str] = []
    inputs = source
    if before:
        graph.append(f"{source}{before}[base]")
        inputs = "[base]"
    filters: list[str] = []
    if files.watermark is not None:
        scale = options.watermark_scale or 0.15
        mark_width = max(2, round(width * scale))
        margin = round(width * (options.watermark_margin or 0.0))
        x, y = _position(options.watermark_position or "bottom-right", margin)
        opacity = 1.0 if options.watermark_opacity is None else options.watermark_opacity
        graph.append(
            # One frame only, whatever else the file might hold; overlay repeats it.
            f"[1:v]trim=end_frame=1,scale={mark_width}:-1:flags=bicubic,format=rgba,"
            f"colorchannelmixer=aa={opacity:.4f}[mark]"
        )
        inputs += "[mark]"
        filters.append(f"overlay=x={x}:y={y}:format=auto:eof_action=repeat")
    if files.subtitles is not None and files.burn_subtitles:
        filters.append(
            f"ass=filename={escape_filter_path(files.subtitles)}"
            f":fontsdir={escape_filter_path(FONTS_DIR)}"
        )
    if after:
        filters.append(after)
    graph.append(f"{inputs}{','.join(filters) or 'null'}{output}")
    return ";".join(graph)


def subtitle_track_args(fmt: str, files: OverlayFiles | None) -> list[str]:
    """The mapping and codec of a soft subtitle track (none for a job without one)."""
    if files is None or files.track is None or fmt not in TRACK_CODECS:
        return []
    index = 2 if files.watermark is not None else 1
    return ["-map", f"{index}:s:0", "-c:s", TRACK_CODECS[fmt]]


def package_picture(
    options: OverlaySettings,
    files: OverlayFiles | None,
    size: tuple[int, int],
    *,
    before: str = "",
) -> tuple[str, str]:
    """For a streaming package: the graph that takes the input's picture through `before`
    (the job's picture chain up to the scaler, which leaves it at `size`) and draws the
    overlays on it (before the ladder splits it, so each rendition scales the same
    drawing), and the label it ends with; ("", "[0:V:0]") when nothing is drawn."""
    if files is None or not files.draws:
        return "", "[0:V:0]"
    return overlay_graph(before, "", options, files, size, output="[drawn]"), "[drawn]"

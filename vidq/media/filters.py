"""The video filter chain: one order of filters for every output that makes new pictures.

API.md fixes the order: deinterlace, input rotation, crop, rotate/flip, scale, overlays,
fps. HDR tone-mapping sits after the scale (fewer pixels to map when the output is
smaller) and before the overlays (a watermark or subtitles are drawn in SDR colours).
The input is opened with ffmpeg's autorotate off (`input_command(autorotate=False)`): the
chain turns the picture itself, after deinterlacing (fields are rows of the picture as
stored), and drops the rotation metadata so that no player turns it again.

All geometry is in the picture as displayed: `crop` is in the input's displayed pixels
(after its rotation metadata and sample aspect ratio), and the output size is computed
from the picture after crop and `rotate`. A single file, a package's ladder and the stills
all take their pictures from this chain, so they agree with one another.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from vidq.media.info import VideoInfo

# HDR to SDR: linear light at a nominal 100 cd/m² peak, BT.709 primaries, then the mobius
# operator (values within the SDR range are kept as they are, highlights are rolled off
# smoothly), then BT.709 transfer and matrix in limited range, 8 bits.
TONE_MAP_OPERATOR = "mobius"
NOMINAL_PEAK_NITS = 100
DEINTERLACER = "bwdif=mode=send_frame:parity=auto:deint=all"
SDR_COLOUR_ARGS = (
    "-color_primaries",
    "bt709",
    "-color_trc",
    "bt709",
    "-colorspace",
    "bt709",
    "-color_range",
    "tv",
)
HDR_CODECS = ("h265", "av1")  # the codecs that can carry HDR (hdr=keep)

# Turning a picture clockwise, in ffmpeg's filters.
_CLOCKWISE = {90: ["transpose=clock"], 180: ["hflip", "vflip"], 270: ["transpose=cclock"]}
_FLIPS = {"h": "hflip", "v": "vflip"}
_DROP_ROTATION = "sidedata=mode=delete:type=DISPLAYMATRIX"
_DROP_HDR_METADATA = (
    "sidedata=mode=delete:type=MASTERING_DISPLAY_METADATA",
    "sidedata=mode=delete:type=CONTENT_LIGHT_LEVEL",
)


class PictureSettings(Protocol):
    """The options the chain reads (`ResolvedOptions` fits; None means the default)."""

    @property
    def video_codec(self) -> str: ...
    @property
    def fps(self) -> float | None: ...
    @property
    def hdr(self) -> str | None: ...
    @property
    def rotate(self) -> int | None: ...
    @property
    def flip(self) -> str | None: ...
    @property
    def crop(self) -> str | None: ...
    @property
    def deinterlace(self) -> str | None: ...


def crop_box(crop: str | None) -> tuple[int, int, int, int] | None:
    """A `w:h:x:y` crop as numbers; None for none (or `auto`, not yet detected)."""
    if crop is None or crop == "auto":
        return None
    width, height, x, y = (int(part) for part in crop.split(":"))
    return width, height, x, y


def deinterlaces(options: PictureSettings, video: VideoInfo) -> bool:
    """Whether the chain deinterlaces: an interlaced input, unless `deinterlace=off`."""
    return video.interlaced and options.deinterlace != "off"


def tone_maps(options: PictureSettings, video: VideoInfo) -> bool:
    """Whether the chain maps an HDR input to SDR BT.709 (unless `hdr=keep` can keep it)."""
    return video.hdr is not None and not keeps_hdr(options, video)


def keeps_hdr(options: PictureSettings, video: VideoInfo) -> bool:
    """Whether the output stays HDR: an HDR input, `hdr=keep`, a codec that carries it."""
    return video.hdr is not None and options.hdr == "keep" and options.video_codec in HDR_CODECS


def makes_new_pictures(options: PictureSettings, video: VideoInfo) -> bool:
    """Whether the picture options or the input itself ask for new pixels: a crop, rotate
    or flip, rotation metadata, an interlaced input to deinterlace, HDR to tone-map."""
    return bool(
        options.crop
        or options.rotate
        or options.flip
        or video.rotation
        or deinterlaces(options, video)
        or tone_maps(options, video)
    )


def picture_size(options: PictureSettings, video: VideoInfo) -> tuple[int, int]:
    """The picture's width and height after crop and rotate, before any scaling."""
    width, height = video.width, video.height
    box = crop_box(options.crop)
    if box is not None:
        width, height = box[0], box[1]
    if options.rotate in (90, 270):
        width, height = height, width
    return width, height


def shown_video(options: PictureSettings, video: VideoInfo) -> VideoInfo:
    """The video as the chain shows it to the scaler: its size after crop and rotate."""
    width, height = picture_size(options, video)
    return dataclasses.replace(video, width=width, height=height)


def displayed_filters(options: PictureSettings, video: VideoInfo) -> list[str]:
    """Deinterlace and input rotation: the picture as displayed (its pixels may not be
    square yet; `square_pixels` makes them so)."""
    filters = [_DROP_ROTATION]
    if deinterlaces(options, video):
        filters.append(DEINTERLACER)
    # The probe's rotation is counterclockwise (the display matrix's); undo it clockwise.
    filters += _CLOCKWISE.get((360 - video.rotation) % 360, [])
    return filters


def square_pixels(video: VideoInfo) -> list[str]:
    """Scale a displayed picture to its displayed size in square pixels: a no-op when they
    are square already (the scaler passes a picture of the same size and format through)."""
    return [f"scale={video.width}:{video.height}", "setsar=1"]


def geometry_filters(options: PictureSettings, video: VideoInfo) -> list[str]:
    """Deinterlace, input rotation, crop, rotate/flip: the picture before it is scaled."""
    filters = displayed_filters(options, video)
    box = crop_box(options.crop)
    if box is not None:  # in displayed pixels
        width, height, x, y = box
        filters += [*square_pixels(video), f"crop={width}:{height}:{x}:{y}:exact=1"]
    if options.rotate:
        filters += _CLOCKWISE[options.rotate]
    if options.flip:
        filters.append(_FLIPS[options.flip])
    return filters


def tone_map_filters(options: PictureSettings, video: VideoInfo) -> list[str]:
    """HDR (PQ or HLG) to SDR BT.709, 8-bit 4:2:0; nothing when the input is not HDR or
    the output keeps it."""
    if not tone_maps(options, video):
        return []
    return [
        f"zscale=tin={video.color_transfer}:pin={hdr_primaries(video)}:min={hdr_matrix(video)}"
        f":rin=tv:t=linear:npl={NOMINAL_PEAK_NITS}",
        "format=gbrpf32le",
        "zscale=p=bt709",
        f"tonemap={TONE_MAP_OPERATOR}:desat=0",
        "zscale=t=bt709:m=bt709:r=tv",
        "format=yuv420p",
        *_DROP_HDR_METADATA,
    ]


def hdr_primaries(video: VideoInfo) -> str:
    """The HDR input's primaries as zscale, x265 and ffmpeg all name them (else BT.2020)."""
    known = ("bt2020", "bt709", "smpte431", "smpte432")
    return video.color_primaries if video.color_primaries in known else "bt2020"


def hdr_matrix(video: VideoInfo) -> str:
    """The HDR input's matrix as zscale, x265 and ffmpeg all name it (else BT.2020 NCL)."""
    known = ("bt2020nc", "bt2020c", "bt709")
    return video.color_space if video.color_space in known else "bt2020nc"


def still_filters(options: PictureSettings, video: VideoInfo) -> list[str]:
    """The chain up to the scaler, tone-mapped: for stills and packages, which scale
    their pictures themselves (open the input with autorotate off)."""
    return [*geometry_filters(options, video), *tone_map_filters(options, video)]


def output_pix_fmt(options: PictureSettings, video: VideoInfo) -> str:
    """The encoded pixel format: 10-bit when HDR is kept, else 8-bit 4:2:0 whatever the
    input (10-bit, 4:4:4...), the format every player decodes."""
    return "yuv420p10le" if keeps_hdr(options, video) else "yuv420p"


def video_filter_parts(
    options: PictureSettings,
    video: VideoInfo,
    *,
    size: tuple[int, int],
    scale_flags: str = "bicubic",
    pix_fmt: str | None = None,
) -> tuple[list[str], list[str]]:
    """The chain for one encoded picture of `size`, in two parts around the overlays: the
    geometry, scale and tone-map before them; fps and the pixel format (if given) after."""
    width, height = size
    before = [
        *geometry_filters(options, video),
        f"scale={width}:{height}:flags={scale_flags}",
        "setsar=1",
        *tone_map_filters(options, video),
    ]
    after = [f"fps={options.fps:g}"] if options.fps else []
    if pix_fmt is not None:
        after.append(f"format={pix_fmt}")
    return before, after

"""Keeping HDR (`hdr=keep`): the encoder arguments of a 10-bit H.265 or AV1 output that
keeps the input's transfer (PQ or HLG), primaries and matrix, and its HDR10 static metadata
(the mastering display and the content light levels, as the probe read them from the
input's first frame). Tone-mapping to SDR is a filter, in `vidq.media.filters`.
"""

from __future__ import annotations

from collections.abc import Sequence

from vidq.media.filters import hdr_matrix, hdr_primaries
from vidq.media.info import VideoInfo


def colour_tags(video: VideoInfo) -> list[str]:
    """The output's colour description: the input's (BT.2020 where it is unusual or absent)."""
    return [
        "-color_primaries",
        hdr_primaries(video),
        "-color_trc",
        video.color_transfer or "smpte2084",
        "-colorspace",
        hdr_matrix(video),
        "-color_range",
        "tv",
    ]


def keep_hdr_args(video_codec: str, encoder: Sequence[str], video: VideoInfo) -> list[str]:
    """`encoder` (the codec's usual arguments) with the HDR signalling of `video` added."""
    args = list(encoder)
    if video_codec == "h265":
        params = [
            "repeat-headers=1",
            f"colorprim={hdr_primaries(video)}",
            f"transfer={video.color_transfer}",
            f"colormatrix={hdr_matrix(video)}",
        ]
        if video.hdr == "pq":
            params.append("hdr10=1")
        if video.mastering_display is not None:
            params.append(f"master-display={_x265_mastering(video.mastering_display)}")
        if video.content_light is not None:
            params.append("max-cll={},{}".format(*video.content_light))
        _add_params(args, "-x265-params", params)
    elif video_codec == "av1":
        params = []
        if video.mastering_display is not None:
            params.append(f"mastering-display={_svt_mastering(video.mastering_display)}")
        if video.content_light is not None:
            params.append("content-light={},{}".format(*video.content_light))
        if params:
            _add_params(args, "-svtav1-params", params)
    else:
        raise ValueError(f"{video_codec} cannot carry HDR")
    return [*args, *colour_tags(video)]


def _add_params(args: list[str], flag: str, params: list[str]) -> None:
    """Append `params` to the encoder's `flag` (x265-params...), adding the flag if absent."""
    if flag in args:
        index = args.index(flag) + 1
        args[index] = ":".join([args[index], *params])
    else:
        args += [flag, ":".join(params)]


def _x265_mastering(display: tuple[float, ...]) -> str:
    """x265's master-display: G, B, R and white point in 0.00002 units, L in 0.0001 cd/m²."""
    rx, ry, gx, gy, bx, by, wx, wy, max_lum, min_lum = display

    def xy(x: float, y: float) -> str:
        return f"({round(x * 50000)},{round(y * 50000)})"

    return (
        f"G{xy(gx, gy)}B{xy(bx, by)}R{xy(rx, ry)}WP{xy(wx, wy)}"
        f"L({round(max_lum * 10000)},{round(min_lum * 10000)})"
    )


def _svt_mastering(display: tuple[float, ...]) -> str:
    """SVT-AV1's mastering-display: the same values as decimals."""
    rx, ry, gx, gy, bx, by, wx, wy, max_lum, min_lum = display

    def xy(x: float, y: float) -> str:
        return f"({x:.4f},{y:.4f})"

    return f"G{xy(gx, gy)}B{xy(bx, by)}R{xy(rx, ry)}WP{xy(wx, wy)}L({max_lum:.4f},{min_lum:.4f})"

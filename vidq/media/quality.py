"""Measured quality of an output: VMAF, luma PSNR and luma SSIM against its reference.

The reference is the input as the job meant to show it: its frames after the job's own
transforms (`reference_filters`), over the job's span. The output (the distorted side)
and the reference are both scaled to the reference's displayed size, set to 4:2:0 8-bit,
their timestamps started at zero, and compared frame by frame by libvmaf (the models
built into the library: `vmaf_v0.6.1`, or `vmaf_4k_v0.6.1` when the reference is above
1080p), which also computes PSNR of luma (`psnr_y`) and SSIM of luma (`float_ssim`).
libvmaf writes every frame's scores to a JSON log; `read_report` pools them into the
Job's `result.quality`: the mean, minimum and 5th percentile of VMAF, the mean PSNR
(dB) and the mean SSIM.

It runs like every vidq ffmpeg: niced, under the same limits, with libvmaf's threads
set from VIDQ_FFMPEG_THREADS (all cores when that is 0).
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidq.config import Settings
from vidq.media.command import input_command, seconds_arg
from vidq.media.filters import PictureSettings, picture_size, still_filters
from vidq.media.formats import ALLOWED_DEMUXERS
from vidq.media.info import MediaInfo

MODEL = "vmaf_v0.6.1"
MODEL_4K = "vmaf_4k_v0.6.1"
LOG_SUFFIX = ".vmaf.json"
# The demuxer that reads back each format vidq writes.
OUTPUT_DEMUXERS = {
    "mp4": "mov",
    "mov": "mov",
    "m4a": "mov",
    "mkv": "matroska",
    "webm": "matroska",
    "gif": "gif",
    "mp3": "mp3",
}


@dataclass(frozen=True)
class Reference:
    """The input as the job shows it: the filters that make it, and its displayed size."""

    filters: tuple[str, ...]
    width: int
    height: int

    @property
    def model(self) -> str:
        return MODEL_4K if min(self.width, self.height) > 1080 else MODEL


def reference(options: PictureSettings, info: MediaInfo) -> Reference:
    """The job's own picture transforms, in the order its conversion applies them.

    The conversion's own chain up to the scaler (deinterlacing, the input's rotation, crop,
    rotate/flip, tone-mapping: `still_filters`, so the input is opened with autorotate
    off), then its fps change, at the size that chain leaves: the output is judged against
    what it was meant to show and not against what it was asked to change."""
    video = info.video
    if video is None:
        raise ValueError("the input has no video to compare with")
    filters = still_filters(options, video)
    if options.fps:
        filters.append(f"fps={options.fps:g}")
    width, height = picture_size(options, video)
    return Reference(tuple(filters), width, height)


def demuxed_as(demuxer: str) -> MediaInfo:
    """A stand-in probe of a file vidq wrote itself, enough to open it with `demuxer`."""
    return MediaInfo(demuxer, demuxer, None, None, None)


def measure_command(
    ffmpeg: str,
    input_path: Path,
    info: MediaInfo,
    output_path: Path,
    output_demuxer: str,
    ref: Reference,
    settings: Settings,
    *,
    start: float | None,
    span_seconds: float | None,
    log_name: str,
) -> list[str]:
    """ffmpeg argv comparing the output's first video stream with the reference (the input
    from `start` for `span_seconds`); libvmaf's log goes to `log_name` in ffmpeg's working
    folder (no path in the filter graph, so nothing in it needs escaping)."""
    if output_demuxer not in ALLOWED_DEMUXERS:
        raise ValueError(f"demuxer {output_demuxer!r} is not allowed")
    argv = input_command(ffmpeg, input_path, info, settings, start=start, autorotate=False)
    if span_seconds is not None:
        argv[-2:-2] = ["-t", seconds_arg(span_seconds)]
    argv += [
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        ",".join(sorted(ALLOWED_DEMUXERS)),
        "-f",
        output_demuxer,
        "-i",
        "file:" + str(output_path.absolute()),
    ]
    size = f"scale={ref.width}:{ref.height}:flags=bicubic,format=yuv420p,setpts=PTS-STARTPTS"
    threads = settings.ffmpeg_threads or os.cpu_count() or 1
    vmaf = ":".join(
        [
            f"libvmaf=model=version={ref.model}",
            "feature=name=psnr|name=float_ssim",
            "log_fmt=json",
            f"log_path={log_name}",
            f"n_threads={threads}",
            "shortest=1",
            "ts_sync_mode=nearest",
        ]
    )
    graph = ";".join(
        [
            "[0:V:0]" + ",".join([*ref.filters, size]) + "[ref]",
            f"[1:V:0]{size}[out]",
            f"[out][ref]{vmaf}[scored]",
        ]
    )
    return [*argv, "-filter_complex", graph, "-map", "[scored]", "-f", "null", "-"]


def read_report(log_path: Path, model: str) -> dict[str, Any]:
    """`result.quality` from libvmaf's JSON log: VMAF mean, min and 5th percentile, PSNR
    and SSIM of luma (means over the frames)."""
    log = json.loads(log_path.read_text())
    scores = sorted(float(frame["metrics"]["vmaf"]) for frame in log["frames"])
    if not scores:
        raise ValueError("libvmaf scored no frame")
    pooled = log["pooled_metrics"]
    return {
        "vmaf": {
            "mean": round(statistics.fmean(scores), 3),
            "min": round(scores[0], 3),
            "p5": round(percentile(scores, 5.0), 3),
        },
        "psnr": round(float(pooled["psnr_y"]["mean"]), 3),
        "ssim": round(float(pooled["float_ssim"]["mean"]), 5),
        "model": model,
    }


def mean_vmaf(log_path: Path) -> tuple[float, int]:
    """The mean VMAF of a log and the number of frames it scored."""
    log = json.loads(log_path.read_text())
    scores = [float(frame["metrics"]["vmaf"]) for frame in log["frames"]]
    if not scores:
        raise ValueError("libvmaf scored no frame")
    return statistics.fmean(scores), len(scores)


def percentile(sorted_values: list[float], percent: float) -> float:
    """The `percent`th percentile of sorted values, linearly interpolated between ranks."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    rank = (len(sorted_values) - 1) * percent / 100.0
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)

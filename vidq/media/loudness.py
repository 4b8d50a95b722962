"""Loudness normalisation to EBU R128 targets: measure, then apply in a second pass.

The first pass measures the span with ffmpeg's `ebur128` scanner (integrated loudness,
its gating threshold, loudness range and true peak, ITU-R BS.1770 / EBU Tech 3341-3342):
the same figures `loudnorm=print_format=json` gives, about ten times faster, because
loudnorm would also normalise (upsampled to 192 kHz) while it measures. The second pass
is the conversion itself, with `loudnorm` given those figures and `linear=true`: one
gain for the whole programme when that gain keeps the true peak under the target;
otherwise loudnorm falls back to its dynamic mode (a gain that changes over time, with a
true-peak limiter). Which one it used is read from the statistics it writes
(`stats_file`, `normalization_type`). loudnorm works at 192 kHz; `aresample` brings the
sound back to its own rate. The output's loudness is then measured on the output file,
as the input's was.

The targets: EBU R128 sets the integrated loudness (-23 LUFS) and the highest true peak
(-1 dBTP) but no loudness range; the streaming target is the -14 LUFS that YouTube and
Spotify play at, with the same peak. vidq keeps the programme's own range: the range
asked of loudnorm is the input's, so that the range never forces the dynamic mode (its
linear mode requires the measured range to be within the target) and, when the peak
does, loudnorm limits peaks without compressing the range.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from vidq.config import Settings
from vidq.media.command import input_command, seconds_arg
from vidq.media.info import MediaInfo


@dataclass(frozen=True)
class LoudnessTarget:
    integrated_lufs: float
    true_peak_dbtp: float


TARGETS: dict[str, LoudnessTarget] = {
    "ebu": LoudnessTarget(-23.0, -1.0),
    "streaming": LoudnessTarget(-14.0, -1.0),
}
LOUDNESS_CHOICES = tuple(TARGETS)
# loudnorm's bounds on what it is told was measured, and on its range target.
_MEASURED_LUFS = (-99.0, 0.0)
_MEASURED_TP = (-99.0, 99.0)
_LRA_TARGET = (1.0, 50.0)
# loudnorm takes a measured range of 0 for "not measured" (and then never goes linear):
# a steady tone, whose range really is 0 LU, is told this instead.
_LEAST_RANGE_LU = 0.01
STATS_FILE = "loudnorm.json"  # written by the second pass into ffmpeg's working folder


@dataclass(frozen=True)
class Loudness:
    """What the `ebur128` scanner measured of one span of sound."""

    integrated_lufs: float
    threshold_lufs: float
    range_lu: float
    true_peak_dbtp: float | None  # None: digital silence (-inf)

    def to_api(self) -> dict[str, float | None]:
        return {"integrated_lufs": self.integrated_lufs, "true_peak_dbtp": self.true_peak_dbtp}


def measure_command(
    ffmpeg: str,
    path: Path,
    info: MediaInfo,
    settings: Settings,
    *,
    start: float | None = None,
    span_seconds: float | None = None,
) -> list[str]:
    """ffmpeg argv that measures the first audio stream of `path` (from `start`, for
    `span_seconds`) and prints the scanner's summary on stderr (`parse_summary`)."""
    argv = input_command(ffmpeg, path, info, settings, start=start)
    argv[argv.index("-loglevel") + 1] = "info"  # the summary is printed at this level
    if span_seconds is not None:
        argv[-2:-2] = ["-t", seconds_arg(span_seconds)]
    return [
        *argv,
        "-map",
        "0:a:0",
        "-af",
        "ebur128=peak=true:framelog=quiet",
        "-f",
        "null",
        "-",
    ]


_SUMMARY = re.compile(
    r"Summary:.*?I:\s*(?P<i>-?[\d.]+|-?inf) LUFS.*?Threshold:\s*(?P<thresh>-?[\d.]+|-?inf) LUFS"
    r".*?LRA:\s*(?P<lra>-?[\d.]+|-?inf) LU.*?Peak:\s*(?P<tp>-?[\d.]+|-?inf) dBFS",
    re.DOTALL,
)


def parse_summary(stderr: str) -> Loudness:
    """The figures of the `ebur128` summary in ffmpeg's stderr; ValueError if there is none."""
    summaries = list(_SUMMARY.finditer(stderr))
    if not summaries:
        raise ValueError("the loudness scanner printed no summary")
    found = summaries[-1]
    peak = float(found["tp"])
    return Loudness(
        integrated_lufs=float(found["i"]),
        threshold_lufs=float(found["thresh"]),
        range_lu=max(0.0, float(found["lra"])),
        true_peak_dbtp=peak if math.isfinite(peak) else None,
    )


def normalize_filters(target: LoudnessTarget, measured: Loudness, sample_rate: int) -> list[str]:
    """The second pass's audio filters: loudnorm with the measured figures, then back to
    `sample_rate`; loudnorm's statistics go to `STATS_FILE` in ffmpeg's working folder."""
    low, high = _LRA_TARGET
    lra_target = min(high, max(low, measured.range_lu))
    peak = measured.true_peak_dbtp if measured.true_peak_dbtp is not None else _MEASURED_TP[0]
    loudnorm = ":".join(
        [
            f"loudnorm=I={target.integrated_lufs:g}",
            f"TP={target.true_peak_dbtp:g}",
            f"LRA={lra_target:.2f}",
            f"measured_I={_clamp(measured.integrated_lufs, _MEASURED_LUFS):.2f}",
            f"measured_TP={_clamp(peak, _MEASURED_TP):.2f}",
            f"measured_LRA={max(_LEAST_RANGE_LU, measured.range_lu):.2f}",
            f"measured_thresh={_clamp(measured.threshold_lufs, _MEASURED_LUFS):.2f}",
            "linear=true",
            "print_format=json",
            f"stats_file={STATS_FILE}",
        ]
    )
    return [loudnorm, f"aresample={sample_rate}"]


def read_mode(stats_path: Path) -> str:
    """ "linear" or "dynamic": how loudnorm normalised, from the statistics it wrote."""
    stats = json.loads(stats_path.read_text())
    mode = str(stats["normalization_type"])
    if mode not in ("linear", "dynamic"):
        raise ValueError(f"loudnorm reported normalization_type {mode!r}")
    return mode


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return min(high, max(low, value)) if math.isfinite(value) else low

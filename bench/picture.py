"""What the picture work costs: HDR tone-mapping, `crop=auto` and deinterlacing, each
against the same conversion without it, on 720p clips, through vidq's own pipeline
(the worker's analysis, `plan_outputs`, its ffmpeg argv) run in this process.

- **tonemap**: a PQ 10-bit H.265 clip to `mp4-h264` (zscale + mobius tone-mapping) vs the
  same clip converted as if it were SDR (the same argv without the tone-mapping filters);
- **crop=auto**: the analysis alone (cropdetect at five points) vs the plain conversion of
  the same letterboxed clip, and the whole `crop=auto` job vs that plain conversion;
- **deinterlace**: an interlaced clip with `deinterlace=auto` (idet on 100 frames, then
  bwdif) vs `deinterlace=off`.

    python bench/picture.py [--runs 3] [--seconds 10]

Rounds rotate the order; the figures are medians, and the last lines are the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from benchlib import ffmpeg_exe, median

from vidq.config import Settings
from vidq.jobs.options import resolve_options
from vidq.media.ffmpeg import run_ffmpeg
from vidq.media.probe import close_prober, probe
from vidq.worker.outputs import plan_outputs
from vidq.worker.picture import prepare_picture

SIZE = "1280x720"


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
        check=True,
        timeout=600,
        env={**os.environ, "SVT_LOG": "1"},
    )


def make_inputs(folder: Path, seconds: int) -> dict[str, Path]:
    """The PQ, letterboxed and interlaced clips."""
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    pq = folder / "pq.mp4"
    _ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate=30:duration={seconds}"),
        "-vf",
        "format=yuv420p,zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:npl=100"
        ":t=smpte2084:p=bt2020:m=bt2020nc:r=tv,format=yuv420p10le",
        *("-c:v", "libx265", "-preset", "veryfast", "-x265-params", "log-level=error:hdr10=1"),
        *("-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc"),
        str(pq),
    )
    letterbox = folder / "letterbox.mp4"
    _ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=1280x536:rate=30:duration={seconds}"),
        *("-vf", "pad=1280:720:0:92:black", *x264, str(letterbox)),
    )
    interlaced = folder / "interlaced.mp4"
    gradient = "gradients=s=1280x720:c0=white:c1=black:x0=0:y0=0:x1=1280:y1=720:speed=0.02"
    _ffmpeg(
        *("-f", "lavfi", "-i", f"{gradient}:rate=50:d={seconds}"),
        *("-vf", "tinterlace=mode=interleave_top,setfield=tff", *x264),
        *("-flags", "+ildct+ilme", "-x264-params", "tff=1", str(interlaced)),
    )
    return {"pq": pq, "letterbox": letterbox, "interlaced": interlaced}


async def convert(
    source: Path,
    raw: dict[str, str],
    settings: Settings,
    out: Path,
    *,
    as_sdr: bool = False,
    analysis_seconds: list[float] | None = None,
) -> None:
    """One job's pictures as the worker makes them; `as_sdr`: take an HDR input as SDR."""
    info = await probe(source, settings)
    if as_sdr and info.video is not None:
        info = dataclasses.replace(info, video=dataclasses.replace(info.video, color_transfer=None))
    started = time.perf_counter()
    options, info = await prepare_picture(
        resolve_options(raw), info, source, settings, asyncio.Event()
    )
    if analysis_seconds is not None:
        analysis_seconds.append(time.perf_counter() - started)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    plan = plan_outputs(options, info, source, out, settings, main_name="out")
    for step in plan.steps:
        result = await run_ffmpeg(
            step.argv,
            settings=settings,
            on_progress=lambda _s: None,
            stop=asyncio.Event(),
            timeout_seconds=900,
            stall_seconds=120,
            max_output_bytes=1024**3,
            cwd=out,
        )
        assert result.returncode == 0, result.stderr_tail


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vidq-bench-picture-") as tmp:
        folder = Path(tmp)
        settings = Settings(data_dir=folder / "data", ffmpeg_memory_bytes=4 * 1024**3)
        inputs = make_inputs(folder, args.seconds)
        analysis: list[float] = []
        cases: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "pq_as_sdr": lambda: convert(inputs["pq"], {}, settings, folder / "o", as_sdr=True),
            "pq_tonemap": lambda: convert(inputs["pq"], {}, settings, folder / "o"),
            "letterbox_plain": lambda: convert(inputs["letterbox"], {}, settings, folder / "o"),
            "letterbox_crop_auto": lambda: convert(
                inputs["letterbox"],
                {"crop": "auto"},
                settings,
                folder / "o",
                analysis_seconds=analysis,
            ),
            "interlaced_off": lambda: convert(
                inputs["interlaced"], {"deinterlace": "off"}, settings, folder / "o"
            ),
            "interlaced_auto": lambda: convert(inputs["interlaced"], {}, settings, folder / "o"),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        names = list(cases)
        for run in range(args.runs):
            order = names[run % len(names) :] + names[: run % len(names)]
            for name in order:
                started = time.perf_counter()
                await cases[name]()
                times[name].append(time.perf_counter() - started)
                print(f"run {run + 1} {name:22s} {times[name][-1]:7.2f} s", flush=True)
        close_prober()
    m = {name: median(values) for name, values in times.items()}
    print(f"load average {os.getloadavg()[0]:.2f}")
    for name, value in m.items():
        print(f"median {name:22s} {value:7.2f} s")
    print(f"median crop analysis         {median(analysis):7.2f} s")
    print(f"tonemap_ratio {m['pq_tonemap'] / m['pq_as_sdr']:.2f}")
    print(f"crop_analysis_ratio {median(analysis) / m['letterbox_plain']:.2f}")
    print(f"crop_auto_ratio {m['letterbox_crop_auto'] / m['letterbox_plain']:.2f}")
    print(f"deinterlace_ratio {m['interlaced_auto'] / m['interlaced_off']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())

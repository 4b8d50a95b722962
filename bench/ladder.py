"""A 4-rendition `cmaf` package of a 60 s 1080p clip: vidq against the same ladder by hand.

Three ways to make the same ladder (1080/720/480/360 H.264 at the ladder's bitrates plus
AAC, 6 s fMP4 segments), timed in rotating order:

- **vidq**: `POST /convert?preset=cmaf` to a real `vidq serve` (one worker), until the job
  is completed (the package stored, its ZIP written);
- **single**: the exact ffmpeg argv vidq runs for that job (one decode, `split` + scale
  per rendition), run by hand at normal priority;
- **separate**: four ffmpeg runs, one rendition each (the first with the audio), each
  decoding the input again;
- **nice10** (a control, not in the ratio): the single run at niceness 10, the priority
  vidq gives its ffmpeg — on a busy machine this, not vidq, is what costs time.

    python bench/ladder.py [--runs 1] [--seconds 60]

The last line is `ratio X.XX` = vidq / single (goal: <= 1.05); `separate_ratio` says how
the one-run ladder compares with four runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import Server, make_clip, median, vidq_server, wait_completed

from vidq.config import Settings
from vidq.jobs.options import resolve_options
from vidq.media import package
from vidq.media.probe import close_prober, probe
from vidq.worker.outputs import plan_outputs

JOB_DEADLINE_SECONDS = 1800.0


def run_vidq(server: Server, clip: Path) -> float:
    with server.client(timeout=120) as client, clip.open("rb") as body:
        started = time.perf_counter()
        job = client.post(
            "/convert",
            params={"preset": "cmaf", "filename": clip.name},
            content=body,
            headers={"Content-Type": "video/mp4"},
        ).json()
        job = wait_completed(client, job, JOB_DEADLINE_SECONDS)
        took = time.perf_counter() - started
        renditions = [f["path"] for f in job["result"]["files"] if f["role"] == "playlist"]
        print(f"  vidq made {len(job['result']['files'])} files, playlists {renditions}")
        client.delete(f"/job/{job['id']}")
    return took


def single_argv(clip: Path, out_dir: Path, settings: Settings) -> list[str]:
    """The argv vidq's worker runs for a cmaf job of this clip."""
    info = asyncio.run(probe(clip, settings))
    options = resolve_options({"preset": "cmaf"})
    plan = plan_outputs(options, info, clip, out_dir, settings, main_name="ladder.zip")
    (step,) = [s for s in plan.steps if s.name == "package"]
    return [a for a in step.argv if a not in ("-progress", "pipe:1")]


def run_single(argv: list[str], out_dir: Path, niceness: int = 0) -> float:
    shutil.rmtree(out_dir, ignore_errors=True)
    package_dir = out_dir / "package"
    package_dir.mkdir(parents=True)
    for n in range(5):
        (package_dir / f"r{n}").mkdir()
    started = time.perf_counter()
    subprocess.run(argv, check=True, cwd=out_dir, preexec_fn=lambda: os.nice(niceness))
    return time.perf_counter() - started


def run_separate(clip: Path, out_dir: Path, renditions: list[package.Rendition]) -> float:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    shutil.rmtree(out_dir, ignore_errors=True)
    started = time.perf_counter()
    for n, r in enumerate(renditions):
        target = out_dir / r.name
        (target / "r0").mkdir(parents=True)
        (target / "r1").mkdir(parents=True)
        audio = ["-map", "0:a:0", "-c:a", "aac", "-b:a", "128000", "-ac", "2"] if n == 0 else []
        argv = [
            ffmpeg,
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(clip),
            "-map",
            "0:v:0",
            "-vf",
            f"scale={r.width}:{r.height}:flags=bicubic,format=yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "fast",
            "-profile:v",
            "high",
            "-b:v",
            str(r.bitrate),
            "-maxrate",
            str(round(r.bitrate * 1.1)),
            "-bufsize",
            str(round(r.bitrate * 1.5)),
            "-g",
            "180",
            "-keyint_min",
            "180",
            "-sc_threshold",
            "0",
            "-force_key_frames",
            "expr:gte(t,n_forced*6)",
            *audio,
            "-f",
            "dash",
            "-seg_duration",
            "6",
            "-hls_playlist",
            "1",
            "-init_seg_name",
            "r$RepresentationID$/init.mp4",
            "-media_seg_name",
            "r$RepresentationID$/seg_$Number%05d$.m4s",
            str(target / "manifest.mpd"),
        ]
        subprocess.run(argv, check=True, cwd=target)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vidq-bench-ladder-") as tmp:
        workdir = Path(tmp)
        clip = make_clip(workdir / "clip.mp4", seconds=args.seconds, size="1920x1080")
        settings = Settings(data_dir=workdir / "probe")
        argv = single_argv(clip, workdir / "single", settings)
        info = asyncio.run(probe(clip, settings))
        assert info.video is not None
        renditions = package.plan_ladder(info.video, None, upscale=False)
        close_prober()
        print(f"ladder: {[f'{r.width}x{r.height}@{r.bitrate // 1000}k' for r in renditions]}")
        times: dict[str, list[float]] = {"vidq": [], "single": [], "separate": [], "nice10": []}
        with vidq_server(workdir, {"VIDQ_WORKERS": "1"}) as server:
            order = ["vidq", "single", "separate", "nice10"]
            for run in range(args.runs):
                for name in order[run % 4 :] + order[: run % 4]:
                    if name == "vidq":
                        took = run_vidq(server, clip)
                    elif name == "single":
                        took = run_single(argv, workdir / "single")
                    elif name == "nice10":
                        took = run_single(argv, workdir / "single", niceness=10)
                    else:
                        took = run_separate(clip, workdir / "separate", renditions)
                    times[name].append(took)
                    print(f"run {run + 1} {name}: {took:.2f} s", flush=True)
    vidq, single, separate = (median(times[k]) for k in ("vidq", "single", "separate"))
    print(
        f"medians: vidq {vidq:.2f} s, single run by hand {single:.2f} s, four runs {separate:.2f} s"
    )
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"separate_ratio {separate / single:.2f}")
    print(f"ratio {vidq / single:.2f}")


if __name__ == "__main__":
    main()

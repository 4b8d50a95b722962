"""How much faster is a remux than a re-encode of the same input, both through vidq?

The script makes a 60 s 1920x1080 30 fps clip (testsrc2 + sine, libx264 veryfast +
AAC, its moov box at the end) in a temporary directory, starts a real `vidq serve`
(temporary data dir, free port on 127.0.0.1, VIDQ_WORKERS=1) and times, end to end
(upload as a raw body -> GET /job/{id}?wait=60 until completed -> download of the
signed download_url), after one untimed warm-up remux:

* remux: preset mp4-h264 as is: the clip already is H.264 High yuv420p + AAC, so
  its streams are copied into a new MP4 (+faststart); `result.remuxed` must be true;
* re-encode: the same with `transcode=always`; `result.remuxed` must be false.

Rounds alternate the two. Both outputs must last as long as the input (within 0.1 s).
It prints each run, the medians and the machine's load average before and after, and
as the last line `speedup X.X` = median re-encode time / median remux time (goal >= 20).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    Server,
    download,
    file_chunks,
    load_average,
    make_clip,
    vidq_server,
    wait_completed,
)

JOB_DEADLINE_SECONDS = 1800.0


def convert(server: Server, clip: Path, out: Path, **options: str) -> tuple[float, dict[str, Any]]:
    """Upload, wait, download: seconds end to end, and the finished Job."""
    with server.client() as client:
        t0 = time.perf_counter()
        answer = client.post(
            "/convert",
            params={"filename": clip.name, "preset": "mp4-h264", **options},
            headers={"Content-Type": "video/mp4", "Content-Length": str(clip.stat().st_size)},
            content=file_chunks(clip),
        )
        if answer.status_code != 202:
            raise RuntimeError(f"POST /convert answered {answer.status_code}: {answer.text}")
        job = wait_completed(client, answer.json(), JOB_DEADLINE_SECONDS)
        download(client, job, out)
        elapsed = time.perf_counter() - t0
        client.delete(f"/job/{job['id']}")  # not timed: keeps the data directory small
    out.unlink()
    return elapsed, job


def check(job: dict[str, Any], remuxed: bool) -> None:
    result = job["result"]
    if result["remuxed"] is not remuxed:
        raise RuntimeError(f"result.remuxed is {result['remuxed']}, expected {remuxed}")
    span = abs(result["duration_seconds"] - job["input"]["duration_seconds"])
    if span > 0.1:
        raise RuntimeError(f"the output's duration differs from the input's by {span:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds (default 2)")
    parser.add_argument("--seconds", type=int, default=60, help="the clip's length (default 60)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vidq-bench-remux-") as tmp:
        work = Path(tmp)
        print(f"load average before: {load_average()}")
        t0 = time.perf_counter()
        clip = make_clip(work / "clip.mp4", seconds=args.seconds, size="1920x1080", rate=30)
        size_mb = clip.stat().st_size / 1e6
        print(
            f"clip: {args.seconds} s 1920x1080 30 fps, {size_mb:.1f} MB, made in"
            f" {time.perf_counter() - t0:.1f} s"
        )
        times: dict[str, list[float]] = {"remux": [], "re-encode": []}
        with vidq_server(work, {"VIDQ_WORKERS": "1"}) as server:
            _, job = convert(server, clip, work / "warm.mp4")  # warm-up, not counted
            check(job, remuxed=True)
            print(
                f"remux options: video_codec={job['options']['video_codec']}"
                f" audio_codec={job['options']['audio_codec']}"
            )
            for round_number in range(1, args.rounds + 1):
                order = ["remux", "re-encode"] if round_number % 2 else ["re-encode", "remux"]
                for kind in order:
                    extra = {"transcode": "always"} if kind == "re-encode" else {}
                    seconds, job = convert(server, clip, work / f"{kind}.mp4", **extra)
                    check(job, remuxed=kind == "remux")
                    times[kind].append(seconds)
                    out_mb = job["result"]["size_bytes"] / 1e6
                    print(f"round {round_number} {kind:>9}: {seconds:7.2f} s ({out_mb:.1f} MB)")
        remux, reencode = (statistics.median(times[k]) for k in ("remux", "re-encode"))
        print(f"median remux {remux:.2f} s, re-encode {reencode:.2f} s")
        print(f"load average after: {load_average()}")
        print(f"speedup {reencode / remux:.1f}")


if __name__ == "__main__":
    main()

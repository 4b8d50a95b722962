"""What `quality_report`, `target_vmaf` and `loudness` cost, against the plain encode.

One real `vidq serve` (one worker) converts the same clip (default 10 s of 1280x720 at
30 fps, testsrc2 + sine, H.264/AAC) as four kinds of job, in rounds whose order rotates:

- **plain**: preset `mp4-h264` (CRF 23), re-encoded (`transcode=always`, as every kind);
- **quality_report**: the same, then scored (VMAF, PSNR, SSIM) against the input;
- **target_vmaf**: `target_vmaf=93` (the CRF search on samples, the encode, the scoring);
- **loudness**: `loudness=ebu` (the measuring pass, the encode with loudnorm, the
  output's measurement).

Each job's time is its `processing_seconds` (started to finished, on the server: the
upload is not in it). The lines `ratio_<kind> X.XX` are the medians over the rounds,
divided by the plain job's median.

    python bench/quality.py [--runs 2] [--seconds 10] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from benchlib import Server, make_clip, median, vidq_server, wait_completed

KINDS: dict[str, dict[str, str]] = {
    "plain": {},
    "quality_report": {"quality_report": "true"},
    "target_vmaf": {"target_vmaf": "93"},
    "loudness": {"loudness": "ebu"},
}
JOB_DEADLINE_SECONDS = 1800.0


def run_job(server: Server, clip: Path, options: dict[str, str]) -> dict[str, object]:
    """Submit the clip with these options; the finished Job."""
    with server.client() as client, clip.open("rb") as body:
        job = client.post(
            "/convert",
            # The clip is already H.264 + AAC: without this the plain job would be a remux.
            params={"filename": clip.name, "transcode": "always", **options},
            content=body,
            headers={"Content-Type": "video/mp4"},
        ).json()
        job = wait_completed(client, job, JOB_DEADLINE_SECONDS)
        client.delete(f"/job/{job['id']}")
    return dict(job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--size", default="1280x720")
    args = parser.parse_args()
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="vidq-bench-quality-") as tmp:
        workdir = Path(tmp)
        clip = make_clip(workdir / "clip.mp4", seconds=args.seconds, size=args.size)
        with vidq_server(workdir, {"VIDQ_WORKERS": "1"}) as server:
            order = list(KINDS)
            for run in range(args.runs):
                for kind in order[run % len(order) :] + order[: run % len(order)]:
                    job = run_job(server, clip, KINDS[kind])
                    took = float(job["processing_seconds"])  # type: ignore[arg-type]
                    times[kind].append(took)
                    loads.append(os.getloadavg()[0])
                    result = job["result"]
                    assert isinstance(result, dict)
                    quality = result.get("quality") or {}
                    vmaf = quality.get("vmaf", {}).get("mean") if quality else None
                    print(
                        f"run {run + 1} {kind}: {took:.2f} s, {result['size_bytes']} bytes"
                        + (f", VMAF {vmaf:.2f}" if vmaf is not None else ""),
                        flush=True,
                    )
    plain = median(times["plain"])
    print("medians: " + ", ".join(f"{k} {median(v):.2f} s" for k, v in times.items()))
    print(f"load average (1 min) during the runs: {min(loads):.2f}-{max(loads):.2f}")
    for kind in KINDS:
        if kind != "plain":
            print(f"ratio_{kind} {median(times[kind]) / plain:.2f}")


if __name__ == "__main__":
    main()

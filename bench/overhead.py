"""How much does going through vidq cost over running the same ffmpeg command directly?

The script makes a 10 s 1280x720 clip (testsrc2 + sine, libx264 + AAC) in a temporary
directory, starts a real `vidq serve` (temporary data dir, free port on 127.0.0.1,
VIDQ_WORKERS=1) and then times, one after the other and interleaved (the order rotates
each round, to spread the machine's noise over all of them):

* vidq, end to end: upload the clip (raw body, preset mp4-h264, transcode=always: the
  clip would otherwise be remuxed) -> wait for the job with GET /job/{id}?wait=60 ->
  download the output from its signed download_url;
* direct: the very ffmpeg argv vidq runs for that job (built with vidq's own
  `build_command` from the same probe and the same resolved options), run by hand on
  the same clip, writing to the same disk, at normal priority;
* nice10 (a control, not in the ratio; --no-nice-control skips it): the direct command
  at niceness 10, which is how vidq runs its ffmpeg; it shows how much of a difference
  comes from the lower priority when other processes compete for the CPU.

One untimed warm-up of each comes first. After the timed runs, one more vidq conversion
is traced (the server's child processes sampled every 20 ms: the input probe, ffmpeg,
the output probe) to show where the time goes inside the server; it is not counted,
since sampling /proc costs CPU. The per-run breakdown uses the job row's own timestamps
(created_at, started_at, finished_at, read from the SQLite database at full precision).

The last line printed is `ratio X.XX`: total vidq time / total direct time (goal <= 1.05).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
from benchlib import (
    Server,
    download,
    file_chunks,
    make_clip,
    mean,
    median,
    vidq_server,
    wait_completed,
)

from vidq.config import Settings
from vidq.jobs.options import resolve_options
from vidq.media.command import build_command
from vidq.media.probe import probe

PRESET = "mp4-h264"
# The clip is already H.264 + AAC, which `mp4-h264` would only remux: both sides encode.
OPTIONS = {"preset": PRESET, "transcode": "always"}
JOB_DEADLINE_SECONDS = 600.0


@dataclass
class VidqRun:
    total: float
    post: float  # upload + input probe + insert, as the client saw it
    wait: float  # POST answered -> GET /job answered "completed"
    download: float
    upload_to_created: float  # POST sent -> job row inserted (server clock = client clock)
    pickup: float  # created_at -> started_at: the job waiting for a worker
    processing: float  # started_at -> finished_at: ffmpeg + output probe + store
    notice: float  # finished_at -> GET /job answered
    output_bytes: int


@dataclass
class ChildSpan:
    kind: str
    start: float
    end: float


@dataclass
class Trace:
    spans: list[ChildSpan] = field(default_factory=list)


def parse_db_time(value: str | None) -> float:
    if value is None:
        raise ValueError("missing timestamp")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def job_times(server: Server, job_id: str) -> tuple[float, float, float]:
    """created_at, started_at, finished_at of a job, at full precision, from the database."""
    uri = f"file:{server.data_dir / 'vidq.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=10) as conn:
        row = conn.execute(
            "SELECT created_at, started_at, finished_at FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
    if row is None:
        raise RuntimeError(f"job {job_id} not in the database")
    created, started, finished = (parse_db_time(v) for v in row)
    return created, started, finished


def run_vidq(server: Server, clip: Path, out_dir: Path, label: str) -> VidqRun:
    """Upload, wait, download: one conversion end to end through the HTTP API."""
    out_path = out_dir / f"vidq-{label}.mp4"
    with server.client() as client:
        wall0 = time.time()
        t0 = time.perf_counter()
        answer = client.post(
            "/convert",
            params={"filename": clip.name, **OPTIONS},
            headers={"Content-Type": "video/mp4", "Content-Length": str(clip.stat().st_size)},
            content=file_chunks(clip),
        )
        t1 = time.perf_counter()
        if answer.status_code != 202:
            raise RuntimeError(f"POST /convert answered {answer.status_code}: {answer.text}")
        job_id = answer.json()["id"]
        job = wait_completed(client, answer.json(), JOB_DEADLINE_SECONDS)
        t2 = time.perf_counter()
        wall2 = wall0 + (t2 - t0)
        download(client, job, out_path)
        t3 = time.perf_counter()
        size = out_path.stat().st_size
        if size != job["result"]["size_bytes"]:
            expected = job["result"]["size_bytes"]
            raise RuntimeError(f"downloaded {size} bytes, the job says {expected}")
        created, started, finished = job_times(server, job_id)
        client.delete(f"/job/{job_id}")  # not timed: keeps the data directory small
    out_path.unlink()
    return VidqRun(
        total=t3 - t0,
        post=t1 - t0,
        wait=t2 - t1,
        download=t3 - t2,
        upload_to_created=created - wall0,
        pickup=started - created,
        processing=finished - started,
        notice=wall2 - finished,
        output_bytes=size,
    )


def run_direct(argv: list[str], output: Path, *, niceness: int = 0, keep: bool = False) -> float:
    """Run the argv by hand; `niceness` 10 is what vidq gives its ffmpeg (a control run)."""
    t0 = time.perf_counter()
    # stdout: vidq reads `-progress pipe:1` from it; here it goes nowhere.
    subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=True,
        timeout=JOB_DEADLINE_SECONDS,
        preexec_fn=(lambda: os.nice(niceness)) if niceness else None,
    )
    elapsed = time.perf_counter() - t0
    if not keep:
        output.unlink()
    return elapsed


def trace_children(
    server_pid: int, stop: threading.Event, trace: Trace, interval: float = 0.02
) -> None:
    """Sample the server's child processes: when each probe / ffmpeg ran."""
    server = psutil.Process(server_pid)
    seen: dict[int, ChildSpan] = {}
    while not stop.is_set():
        now = time.time()
        try:
            children = server.children()
        except psutil.Error:
            return
        for child in children:
            span = seen.get(child.pid)
            if span is None or span.kind == "other":  # "other": forked, not yet exec'd
                try:
                    cmdline = " ".join(child.cmdline())
                except psutil.Error:
                    continue
                kind = (
                    "probe"
                    if "_probe_child" in cmdline
                    else ("ffmpeg" if "ffmpeg" in cmdline else "other")
                )
                if span is None:
                    span = ChildSpan(kind, now, now)  # first seen: within one interval
                    seen[child.pid] = span
                    trace.spans.append(span)
                span.kind = kind
            span.end = now
        stop.wait(interval)


def traced_run(server: Server, clip: Path, out_dir: Path) -> tuple[VidqRun, Trace]:
    trace = Trace()
    stop = threading.Event()
    sampler = threading.Thread(target=trace_children, args=(server.pid, stop, trace), daemon=True)
    sampler.start()
    try:
        wall0 = time.time()
        run = run_vidq(server, clip, out_dir, "traced")
    finally:
        stop.set()
        sampler.join(5)
    for span in trace.spans:
        span.start -= wall0
        span.end -= wall0
    return run, trace


def time_probe(path: Path, settings: Settings, repeat: int = 3) -> float:
    """Median time of vidq's probe (PyAV in a child process) on a file, from this process."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        asyncio.run(probe(path, settings))
        times.append(time.perf_counter() - t0)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument(
        "--no-nice-control",
        action="store_true",
        help="skip the control runs of the direct command at niceness 10 (vidq's)",
    )
    args = parser.parse_args()
    runs = max(1, min(args.runs, 20))
    arms = ["vidq", "direct"] if args.no_nice_control else ["vidq", "direct", "nice10"]

    workdir = Path(tempfile.mkdtemp(prefix="vidq-bench-overhead-"))
    try:
        print(
            f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        clip = make_clip(workdir / "clip.mp4")
        settings = Settings(data_dir=workdir / "direct")
        info = asyncio.run(probe(clip, settings))
        options = resolve_options(OPTIONS)
        direct_out = workdir / "direct-out.mp4"
        argv = build_command(settings.ffmpeg_binary(), clip, direct_out, options, info, settings)
        size = f"{info.video.width}x{info.video.height}" if info.video else "no video"
        print(f"clip: {clip.stat().st_size} bytes, {info.duration_seconds} s, {size}")
        print("direct argv (the one vidq builds for this job):")
        print("  " + " ".join(argv[1:]))

        vidq_runs: list[VidqRun] = []
        direct_runs: list[float] = []
        nice_runs: list[float] = []
        with vidq_server(workdir, {"VIDQ_WORKERS": "1"}) as server:
            print(f"vidq serve pid {server.pid} at {server.base_url}")
            warm_vidq = run_vidq(server, clip, workdir, "warmup")
            warm_direct = run_direct(argv, direct_out, keep=True)
            warm_output = direct_out.rename(workdir / "warm-output.mp4")
            print(
                f"warm-up (not counted): vidq {warm_vidq.total:.3f} s, direct {warm_direct:.3f} s"
            )
            for i in range(runs):
                order = arms[i % len(arms) :] + arms[: i % len(arms)]  # rotate: spread noise
                for arm in order:
                    if arm == "vidq":
                        run = run_vidq(server, clip, workdir, str(i))
                        vidq_runs.append(run)
                        elapsed = run.total
                    elif arm == "direct":
                        elapsed = run_direct(argv, direct_out)
                        direct_runs.append(elapsed)
                    else:
                        elapsed = run_direct(argv, direct_out, niceness=10)
                        nice_runs.append(elapsed)
                    print(f"run {i + 1} {arm:<7} {elapsed:7.3f} s")
            traced, trace = traced_run(server, clip, workdir)
        probe_in = time_probe(clip, settings)
        probe_out = time_probe(warm_output, settings)
        load_after = os.getloadavg()[0]

        vidq_times = [r.total for r in vidq_runs]
        print()
        for name, times in (("vidq", vidq_times), ("direct", direct_runs), ("nice10", nice_runs)):
            if times:
                print(
                    f"{name:<7} median {median(times):7.3f} s  mean {mean(times):7.3f} s  "
                    f"total {sum(times):7.3f} s"
                )
        print("  (nice10: the direct command at niceness 10, as vidq runs ffmpeg; not in ratio)")
        print(f"  load average at the end {load_after:.2f}")

        print()
        print("breakdown of each vidq run, seconds (server side from the job row's timestamps):")
        header = (
            "run",
            "total",
            "POST",
            "pickup",
            "process",
            "notice",
            "download",
            "outside",
            "proc-dir",
        )
        print("  " + " ".join(f"{h:>8}" for h in header))
        for i, (run, direct) in enumerate(zip(vidq_runs, direct_runs, strict=True)):
            outside = run.total - run.processing
            cells = [
                run.total,
                run.post,
                run.pickup,
                run.processing,
                run.notice,
                run.download,
                outside,
                run.processing - direct,
            ]
            print(f"  {i + 1:>8} " + " ".join(f"{c:8.3f}" for c in cells))
        print("  POST     = upload + input probe + job insert, as the client saw it")
        print("  pickup   = job row inserted -> claimed by the worker")
        print("  process  = claimed -> finished: ffmpeg, output probe, storing the output")
        print("  notice   = finished -> GET /job/{id}?wait=60 answered")
        print("  download = the signed download_url, to a file")
        print("  outside  = total - process (everything but the worker's part)")
        print("  proc-dir = process - the direct run of the same round (ffmpeg noise + probe)")

        def med(attr: str) -> float:
            return median([getattr(r, attr) for r in vidq_runs])

        outside_med = median([r.total - r.processing for r in vidq_runs])
        print(
            f"  medians: outside {outside_med:.3f} s = POST {med('post'):.3f} s"
            f" + pickup {med('pickup'):.3f} s + notice {med('notice'):.3f} s"
            f" + download {med('download'):.3f} s (roughly; medians do not add up exactly)"
        )
        print(
            f"  vidq's probe (a PyAV child process), timed from here: input {probe_in:.3f} s,"
            f" output {probe_out:.3f} s"
        )
        fixed = outside_med + probe_out
        print(
            f"  fixed cost a job (median outside + output probe): {fixed:.3f} s ="
            f" {100 * fixed / median(direct_runs):.1f}% of the median direct run"
        )

        print()
        print(
            f"traced run (not counted; server children sampled every 20 ms; times from POST):"
            f" total {traced.total:.3f} s, POST {traced.post:.3f} s, pickup {traced.pickup:.3f}"
            f" s, process {traced.processing:.3f} s, notice {traced.notice:.3f} s,"
            f" download {traced.download:.3f} s"
        )
        for span in trace.spans:
            print(
                f"  {span.kind:<7} from {span.start:7.3f} s to {span.end:7.3f} s"
                f"  ({span.end - span.start:.3f} s)"
            )

        print()
        print(f"ratio {sum(vidq_times) / sum(direct_runs):.2f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""How fast does vidq take a 1 GiB upload, and how much memory does the server use meanwhile?

What is uploaded: a real, valid MP4 of exactly 1 GiB. The script encodes a 2 s clip with
its index at the front (`+faststart`) and appends one top-level `free` box (the MP4 way of
saying "padding, skip me") filled with pseudo-random bytes up to 1 GiB. The server
therefore does its whole accepted-upload path - stream to storage while hashing,
probe (which passes), insert the job, answer 202 - rather than refusing the file with
422 after probing; random bytes alone would measure almost the same streaming path but
end in an error. Uploads run against `vidq serve` with VIDQ_WORKERS=0, so no conversion
ever starts; each accepted job is deleted right after its upload (not timed) so the
data directory never holds more than one copy.

Measured, interleaved over a few rounds (copy, raw, multipart, rotated each round):

* copy: `shutil.copyfile` of the same file to the same filesystem (page cache, no fsync;
  the server does not fsync either);
* raw: POST /convert with the file as the body (Content-Type video/mp4, Content-Length);
* multipart: POST /convert with a multipart/form-data body: one `preset` field, then the
  `file` part;
* tus: the same file as a resumable upload with vidq's Python client
  (`VidqClient.upload_resumable` with its defaults: 64 MiB chunks, no per-chunk
  checksum), then POST /convert `{"upload_id": …}`: timed from the creating request to
  the 202, so it includes every PATCH (each takes and releases the upload's lock in the
  database), the probe and the insert;
* tus+sha256: the same with `checksum="sha256"`: every chunk hashed by the client and
  checked by the server.

The client streams the file from disk in 1 MiB chunks through a generator (httpx; the
multipart body is framed by hand around the same generator), never holding it in memory.
MB/s is 10^6 bytes per second over the whole request (first byte sent -> 202 received,
so it includes the probe and the insert); the time until the last byte was sent is shown
too. The server's memory is its RSS (psutil, sampled every 10 ms): peak during the
request minus the RSS just before it. The probe's child process is not part of it.

The last lines are `raw_mb_s`, `multipart_mb_s`, `tus_mb_s`, `copy_mb_s`, `raw_ratio`,
`multipart_ratio` (upload speed / copy speed; medians), `tus_vs_raw` (tus speed / raw
speed; goal >= 0.8), `tus_sha256_vs_raw`, `tus_cpu_vs_raw` (CPU seconds of server and
client, tus / raw: what the speeds come to on a machine busy with other work) and
`rss_growth_mb` (the largest growth seen over all uploads, in MiB; goal < 50).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import psutil
from benchlib import Server, make_clip, median, vidq_server

from vidq.client import TUS_CHUNK_BYTES, VidqClient

GIB = 1024**3
KINDS = ("copy", "raw", "multipart", "tus", "tus+sha256")
MIB = 1024**2
CHUNK_BYTES = MIB
UPLOAD_TIMEOUT_SECONDS = 600.0
RSS_SAMPLE_SECONDS = 0.01


def make_big_video(path: Path, size: int, workdir: Path) -> None:
    """A valid MP4 of exactly `size` bytes: a short faststart clip + one `free` box."""
    clip = make_clip(workdir / "small.mp4", seconds=2, size="320x240", faststart=True)
    head = clip.read_bytes()
    clip.unlink()
    padding = size - len(head)
    if padding < 8 or padding >= 2**32:
        raise ValueError("size out of range for one 32-bit free box")
    block = random.Random(1234).randbytes(16 * MIB)
    with open(path, "wb") as handle:
        handle.write(head)
        handle.write(struct.pack(">I4s", padding, b"free"))
        left = padding - 8
        while left > 0:
            left -= handle.write(block[: min(left, len(block))])
    if path.stat().st_size != size:
        raise RuntimeError("the big file came out the wrong size")


def file_chunks(path: Path, done: Callable[[], None] | None = None) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk
    if done is not None:
        done()


class RssSampler:
    """Samples one process's RSS in a thread until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.rss())
            except psutil.Error:
                return
            self.samples += 1
            self._stop.wait(RSS_SAMPLE_SECONDS)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, self.rss())


@dataclass
class Result:
    kind: str
    seconds: float
    sent_seconds: float | None = None  # until the last byte left the client
    rss_before: int = 0
    rss_peak: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    def mb_s(self, size: int) -> float:
        return size / self.seconds / 1e6

    @property
    def rss_growth(self) -> int:
        return self.rss_peak - self.rss_before


def time_copy(source: Path, target: Path) -> Result:
    t0 = time.perf_counter()
    shutil.copyfile(source, target)
    seconds = time.perf_counter() - t0
    target.unlink()
    return Result("copy", seconds)


def sender(
    server: Server, source: Path, kind: str, body_sent: Callable[[], None]
) -> Callable[[httpx.Client], dict[str, Any]]:
    """How to send the file one way; the function returns the Job it made (a 202)."""
    size = source.stat().st_size
    if kind in ("tus", "tus+sha256"):
        checksum: Literal["sha256"] | None = "sha256" if kind == "tus+sha256" else None

        def send_tus(client: httpx.Client) -> dict[str, Any]:
            with VidqClient(
                server.base_url, server.api_key, timeout=UPLOAD_TIMEOUT_SECONDS
            ) as vidq:
                upload_id = vidq.upload_resumable(source, checksum=checksum)
                body_sent()
                return vidq.convert_upload(upload_id, preset="mp4-h264")

        return send_tus
    if kind == "raw":
        params = {"filename": source.name, "preset": "mp4-h264"}
        headers = {"Content-Type": "video/mp4", "Content-Length": str(size)}

        def body() -> Iterator[bytes]:
            yield from file_chunks(source, body_sent)

    elif kind == "multipart":
        boundary = uuid.uuid4().hex
        head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="preset"\r\n\r\n'
            "mp4-h264\r\n"
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{source.name}"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        params = {}
        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }

        def body() -> Iterator[bytes]:
            yield head
            yield from file_chunks(source)
            yield tail
            body_sent()

    else:
        raise ValueError(f"no way to send {kind!r}")

    def send(client: httpx.Client) -> dict[str, Any]:
        answer = client.post("/convert", params=params, headers=headers, content=body())
        if answer.status_code != 202:
            raise RuntimeError(f"{kind} upload answered {answer.status_code}: {answer.text}")
        job: dict[str, Any] = answer.json()
        return job

    return send


def upload(server: Server, source: Path, kind: str) -> Result:
    """Send the file (raw, multipart or tus), measure time, server RSS and CPU; delete the job."""
    size = source.stat().st_size
    sent: list[float] = []
    t0 = 0.0

    def body_sent() -> None:
        sent.append(time.perf_counter() - t0)

    send = sender(server, source, kind, body_sent)
    server_process = psutil.Process(server.pid)
    with server.client(timeout=UPLOAD_TIMEOUT_SECONDS) as client:
        cpu0 = server_process.cpu_times()
        client_cpu0 = time.process_time()
        with RssSampler(server.pid) as sampler:
            before = sampler.rss()
            t0 = time.perf_counter()
            job = send(client)
            seconds = time.perf_counter() - t0
        cpu1 = server_process.cpu_times()
        client_cpu = time.process_time() - client_cpu0
        if job["input"]["size_bytes"] != size:
            raise RuntimeError(f"the server stored {job['input']['size_bytes']} bytes, not {size}")
        client.delete(f"/job/{job['id']}").raise_for_status()
    return Result(
        kind,
        seconds,
        sent_seconds=sent[0] if sent else None,
        rss_before=before,
        rss_peak=sampler.peak,
        server_cpu=(cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        client_cpu=client_cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each (default 3)")
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"which to measure, comma-separated (default {','.join(KINDS)})",
    )
    args = parser.parse_args()
    kinds = tuple(kind for kind in KINDS if kind in args.kinds.split(","))
    if "raw" not in kinds:
        raise SystemExit("--kinds must include raw: the others are compared with it")
    rounds = max(1, min(args.rounds, 10))
    size = max(16, min(args.size_mib, 4000)) * MIB

    workdir = Path(tempfile.mkdtemp(prefix="vidq-bench-upload-"))
    try:
        free = shutil.disk_usage(workdir).free
        if free < 4 * size:
            raise SystemExit(f"need {4 * size / GIB:.1f} GiB free in {workdir.parent}")
        print(
            f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores,"
            f" load average {os.getloadavg()[0]:.2f}; files in {workdir}"
        )
        source = workdir / "big.mp4"
        make_big_video(source, size, workdir)
        print(f"source: {size} bytes, a valid MP4 (2 s clip + free box of pseudo-random bytes)")

        results: dict[str, list[Result]] = {kind: [] for kind in kinds}
        settings = {"VIDQ_WORKERS": "0", "VIDQ_MAX_UPLOAD_BYTES": str(2 * size)}
        with vidq_server(workdir, settings) as server:
            print(
                f"vidq serve pid {server.pid} at {server.base_url} (workers 0);"
                f" tus chunks of {TUS_CHUNK_BYTES // MIB} MiB"
            )
            upload(server, source, "raw")  # warm-up, not counted
            for r in range(rounds):
                for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
                    if kind == "copy":
                        result = time_copy(source, workdir / "copy.mp4")
                    else:
                        result = upload(server, source, kind)
                    results[kind].append(result)
                    line = f"round {r + 1} {kind:<10} {result.seconds:7.3f} s"
                    line += f" {result.mb_s(size):7.1f} MB/s"
                    if kind != "copy":
                        line += (
                            f"  last byte sent at {result.sent_seconds or 0:.3f} s,"
                            f" server RSS +{result.rss_growth / MIB:.1f} MiB,"
                            f" server CPU {result.server_cpu:.2f} s,"
                            f" client CPU {result.client_cpu:.2f} s"
                        )
                    print(line)
        load_after = os.getloadavg()[0]

        speed = {k: median([x.mb_s(size) for x in v]) for k, v in results.items()}
        uploads = [result for kind in kinds if kind != "copy" for result in results[kind]]
        growth = max(x.rss_growth for x in uploads) / MIB
        print()
        cpu = {k: median([x.server_cpu + x.client_cpu for x in v]) for k, v in results.items()}
        print(
            f"{'':<10} {'median MB/s':>12} {'median s':>9} {'vs copy':>8} {'RSS +MiB':>9}"
            f" {'CPU s':>6}"
        )
        for kind, runs in results.items():
            secs = median([x.seconds for x in runs])
            rss = "" if kind == "copy" else f"{max(x.rss_growth for x in runs) / MIB:9.1f}"
            cpu_s = "" if kind == "copy" else f"{cpu[kind]:6.2f}"
            vs_copy = f"{speed[kind] / speed['copy']:8.2f}" if "copy" in speed else ""
            print(f"{kind:<10} {speed[kind]:12.1f} {secs:9.3f} {vs_copy:>8} {rss:>9} {cpu_s:>6}")
        print(
            f"(MB = 10^6 bytes; RSS +MiB: the largest peak-minus-before over the rounds;"
            f" CPU s: server and client CPU seconds, median;"
            f" load average at the end {load_after:.2f})"
        )
        print()
        for kind in kinds:
            print(f"{kind.replace('+', '_')}_mb_s {speed[kind]:.1f}")
        for kind in ("raw", "multipart"):
            if kind in speed and "copy" in speed:
                print(f"{kind}_ratio {speed[kind] / speed['copy']:.2f}")
        for kind in ("tus", "tus+sha256"):
            if kind in speed:
                print(f"{kind.replace('+', '_')}_vs_raw {speed[kind] / speed['raw']:.2f}")
        if "tus" in cpu:
            print(f"tus_cpu_vs_raw {cpu['tus'] / cpu['raw']:.2f}")
        print(f"rss_growth_mb {growth:.1f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

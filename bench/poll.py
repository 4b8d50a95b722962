"""How fast does vidq answer status polls, against a FastAPI hello-world on the same stack?

Starts two servers on 127.0.0.1:

* **hello**: a FastAPI app with one route, `GET /hello` -> `{"hello": "world"}`, served by
  uvicorn with httptools (the protocol vidq's own server is built on), log level warning;
* **vidq**: a real `vidq serve` (temporary data directory, one idle worker, no rate limit,
  log level warning), on SQLite by default or on a fresh PostgreSQL database
  (`--postgres URL`), holding a few small completed jobs.

Then loads them with the same generator (wrk if installed, else `bench/loadgen.py` in its
own process), the same number of connections and the same time, in rounds whose order
rotates:

* `hello`: GET /hello;
* `job`: GET /job/{id} of a completed job, with the key;
* `job304`: the same with `If-None-Match` of its ETag (answered 304);
* `jobs`: GET /jobs (a page of all the jobs made).

Every answer must have the expected status (200, or 304 for `job304`); the script stops
if any did not. It prints each round, the medians, and as its last line `ratio X.XX` =
the median over the rounds of each round's req/s of `job` / req/s of `hello` (goal >= 0.5;
each round measures both a few seconds apart, which matters on a busy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from benchlib import Server, free_port, make_clip, median, vidq_server

LOADGEN = Path(__file__).resolve().with_name("loadgen.py")
HELLO_APP = textwrap.dedent(
    """
    import sys
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools",
                log_level="warning")
    """
)


@contextmanager
def hello_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    script = workdir / "hello_app.py"
    script.write_text(HELLO_APP)
    process = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/hello", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the hello-world server did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def run_load(url: str, headers: list[str], seconds: float, connections: int) -> dict[str, object]:
    """req/s and status counts of one run of the generator against `url`."""
    wrk = shutil.which("wrk")
    if wrk:
        argv = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
        for header in headers:
            argv += ["-H", header]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        rps = float(out.split("Requests/sec:")[1].split()[0])
        bad = 0
        if "Non-2xx or 3xx responses:" in out:
            bad = int(out.split("Non-2xx or 3xx responses:")[1].split()[0])
        return {"rps": rps, "status": {"bad": bad} if bad else {}}
    argv = [sys.executable, str(LOADGEN), "--url", url, "--seconds", str(seconds)]
    argv += ["--connections", str(connections)]
    for header in headers:
        argv += ["--header", header]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def make_jobs(server: Server, clip: Path, count: int) -> str:
    """Convert `clip` `count` times; the id of the first job."""
    ids = []
    with server.client() as client:
        for _ in range(count):
            answer = client.post(
                "/convert",
                params={"filename": clip.name, "preset": "mp4-h264"},
                headers={"Content-Type": "video/mp4"},
                content=clip.read_bytes(),
            )
            answer.raise_for_status()
            ids.append(answer.json()["id"])
        for job_id in ids:
            job = client.get(f"/job/{job_id}", params={"wait": 60}).json()
            if job["status"] != "completed":
                raise RuntimeError(f"job {job_id} ended {job['status']}: {job['error']}")
    return ids[0]


@contextmanager
def postgres_database(server_url: str | None) -> Iterator[str | None]:
    if server_url is None:
        yield None
        return
    from fleet import fresh_database

    with fresh_database(server_url) as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=10, help="completed jobs GET /jobs lists")
    parser.add_argument(
        "--postgres", metavar="URL", help="run vidq on a fresh database of this server"
    )
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    print(f"generator: {'wrk' if shutil.which('wrk') else 'bench/loadgen.py'}")
    with (
        tempfile.TemporaryDirectory(prefix="vidq-poll-") as tmp,
        postgres_database(args.postgres) as database_url,
    ):
        workdir = Path(tmp)
        clip = make_clip(workdir / "clip.mp4", seconds=1, size="160x120")
        settings = {"VIDQ_WORKERS": "1", "VIDQ_RATE_LIMIT_PER_SECOND": "0"}
        if database_url is not None:
            settings["VIDQ_DATABASE_URL"] = database_url
        with hello_server(workdir) as hello_url, vidq_server(workdir, settings) as server:
            job_id = make_jobs(server, clip, args.jobs)
            auth = f"Authorization: Bearer {server.api_key}"
            with server.client() as client:
                etag = client.get(f"/job/{job_id}").headers["etag"]
            cases = {
                "hello": (f"{hello_url}/hello", [], 200),
                "job": (f"{server.base_url}/job/{job_id}", [auth], 200),
                "job304": (
                    f"{server.base_url}/job/{job_id}",
                    [auth, f"If-None-Match: {etag}"],
                    304,
                ),
                "jobs": (f"{server.base_url}/jobs", [auth], 200),
            }
            names = list(cases)
            for name in names:  # warm-up, not counted
                url, headers, _ = cases[name]
                run_load(url, headers, 1.0, args.connections)
            results: dict[str, list[float]] = {name: [] for name in names}
            for round_no in range(args.rounds):
                order = names[round_no % len(names) :] + names[: round_no % len(names)]
                for name in order:
                    url, headers, expected = cases[name]
                    outcome = run_load(url, headers, args.seconds, args.connections)
                    status = outcome["status"]
                    assert isinstance(status, dict)
                    if set(status) - {str(expected)}:
                        raise RuntimeError(f"{name}: unexpected answers {status}")
                    rps = float(str(outcome["rps"]))
                    results[name].append(rps)
                    print(f"round {round_no + 1} {name:7s} {rps:9.1f} req/s  {status}")
    hello = median(results["hello"])
    print(f"load average at end: {os.getloadavg()}")
    print(f"database: {'postgresql' if args.postgres else 'sqlite'}")
    for name in names:
        value = median(results[name])
        print(f"median {name:7s} {value:9.1f} req/s  ({value / hello:.2f} of hello)")
    # Each round's own ratio: hello and job measured a few seconds apart, so that a busy
    # moment of the machine weighs on both.
    paired = [job / base for job, base in zip(results["job"], results["hello"], strict=True)]
    print("ratio of each round: " + " ".join(f"{r:.2f}" for r in paired))
    print(f"ratio {median(paired):.2f}")


if __name__ == "__main__":
    main()

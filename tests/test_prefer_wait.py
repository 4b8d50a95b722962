"""`Prefer: wait=N` on POST /convert (RFC 7240), and the Job's `eta_seconds`.

A job that ends within N seconds is answered `201 Created` with the finished Job; one that
does not, `202` after N seconds; a preference the server cannot honour is ignored, whatever
bytes it holds. The time left is estimated from this attempt's progress rate.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from vidq.api.params import preferred_wait
from vidq.jobs.queue import Claim
from vidq.worker.worker import RunningJob

from .conftest import LiveServer


def _post(
    client: httpx.Client, path: Path, prefer: str | bytes | None, **fields: str
) -> httpx.Response:
    headers = {} if prefer is None else {"Prefer": prefer}
    with path.open("rb") as handle:
        return client.post(
            "/convert",
            files={"file": (path.name, handle, "video/mp4")},
            data=fields,
            headers=headers,
        )


def test_a_job_that_ends_in_time_is_created(live_server: LiveServer, clip: Path) -> None:
    with live_server.client() as client:
        answer = _post(client, clip, "wait=30")
        assert answer.status_code == 201, answer.text
        assert answer.headers["Preference-Applied"] == "wait=30"
        job = answer.json()
        assert answer.headers["Location"] == f"/job/{job['id']}"
        assert "Retry-After" not in answer.headers
        assert job["status"] == "completed" and job["progress_percent"] == 100.0
        assert job == client.get(f"/job/{job['id']}").json()
        download = httpx.get(job["result"]["download_url"], timeout=30)
        assert download.status_code == 200 and len(download.content) == job["result"]["size_bytes"]


def test_a_job_that_does_not_end_in_time_is_accepted(
    live_server: LiveServer, long_clip: Path
) -> None:
    with live_server.client() as client:
        started = time.monotonic()
        answer = _post(client, long_clip, "respond-async, wait=1.5; x=y", preset="webm-vp9")
        waited = time.monotonic() - started
        assert answer.status_code == 202, answer.text
        assert answer.headers["Preference-Applied"] == "wait=1.5"
        assert answer.json()["status"] in ("queued", "running")
        assert waited >= 1.5
        client.delete(f"/job/{answer.json()['id']}")


@pytest.mark.parametrize(
    "prefer",
    [
        "wait=0",
        "wait=61",
        "wait=-1",
        "wait=1e3",
        "wait=abc",
        "wait=",
        "wait",
        "wait=nan",
        "wait=inf",
        "wait=\u0661",  # an Arabic-Indic digit one
        "wait=10000000000000000000000000000000",
        'wait="',
        ",,,;;;===",
        b"wait=\xff\xfe",
        "handling=lenient",
    ],
)
def test_a_preference_not_understood_is_ignored(
    live_server: LiveServer, clip: Path, prefer: str | bytes
) -> None:
    if isinstance(prefer, str) and not prefer.isascii():
        prefer = prefer.encode()
    with live_server.client() as client:
        answer = _post(client, clip, prefer)
    assert answer.status_code == 202, answer.text
    assert "Preference-Applied" not in answer.headers


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        (["wait=10"], 10.0),
        (["WAIT = 10"], 10.0),
        (['wait="2.5"'], 2.5),
        (["respond-async, wait=60"], 60.0),
        (["wait=5;param=1"], 5.0),
        (['handling="a,wait=9", wait=3'], 3.0),
        (["respond-async", "wait=4"], 4.0),
        (["wait=4, wait=9"], 4.0),  # RFC 7240: only the first instance counts
        (["wait=0.0"], None),
        (["wait=60.5"], None),
        (["wait=+5"], None),
        ([], None),
    ],
)
def test_preferred_wait(headers: list[str], seconds: float | None) -> None:
    assert preferred_wait(headers) == seconds


def test_eta_is_the_time_left_at_this_attempts_rate() -> None:
    running = RunningJob(claim=Claim(job=None, lease_token="t"))  # type: ignore[arg-type]
    running.started = time.monotonic() - 10.0
    assert running.eta_seconds() is None  # no progress yet: no rate
    running.progress_percent = 25.0
    eta = running.eta_seconds()
    assert eta is not None and 29.5 < eta < 31.0  # 10 s for a quarter: 30 s for the rest
    running.started = time.monotonic()
    assert running.eta_seconds() is None  # too soon to tell

"""A webhook in flight when `vidq serve` is killed (-9) is delivered after the restart.

The real program runs as a subprocess and converts a real clip; the receiver holds the
first delivery open, the server is killed mid-request, and a new server on the same data
directory retries the same event (same webhook-id) once the dead one's lease runs out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from .conftest import free_port
from .helpers import wait_for
from .notify_receivers import Reply, WebhookReceiver


@contextmanager
def vidq_serve(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`vidq serve` on 127.0.0.1:`port`, ready to answer; stopped (if still alive) on exit."""
    command = [
        sys.executable,
        "-m",
        "vidq.cli.main",
        "serve",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--data-dir={data_dir}",
        "--workers=1",
        "--log-level=warning",
        "--webhook-allow-private=true",
        "--webhook-timeout-seconds=1",
        "--notify-retry-seconds=0,0.5,0.5,0.5",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDQ_")}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "vidq serve exited at start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "vidq serve did not start"
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    answer = client.get(f"/job/{job_id}")
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def test_delivery_in_flight_survives_kill_9(tmp_path: Path, clip: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    release = threading.Event()
    with WebhookReceiver([Reply(204, hold=release)]) as receiver:
        with vidq_serve(data_dir, port) as first:
            key = (data_dir / "api-key").read_text().strip()
            headers = {"authorization": f"Bearer {key}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
                secret = client.get("/account").json()["webhook_secret"]
                with clip.open("rb") as handle:
                    answer = client.post(
                        "/convert",
                        files={"file": ("clip.mp4", handle, "video/mp4")},
                        data={"webhook_url": receiver.url},
                    )
                assert answer.status_code == 202, answer.text
                job_id = answer.json()["id"]
                # The job converts, its webhook goes out, and the receiver holds it open.
                assert receiver.arrived.wait(60), "no delivery was attempted"
                first.kill()  # SIGKILL, mid-request: nothing is recorded
                first.wait()
        release.set()
        assert len(receiver.received) == 1

        with (
            vidq_serve(data_dir, port),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client,
        ):
            before = _job(client, job_id)
            assert before["status"] == "completed"
            # The delivery cut short by the kill was never recorded: it is redelivered (its
            # status may already read delivered, the restarted notifier is quick), and the
            # two tries below count as two attempts of the same event.
            assert before["notifications"]["webhook"]["status"] in ("pending", "delivered")
            wait_for(lambda: len(receiver.received) >= 2, timeout=20)
            wait_for(
                lambda: _job(client, job_id)["notifications"]["webhook"]["status"] == "delivered"
            )
            shown = _job(client, job_id)["notifications"]["webhook"]

    assert shown == {"url": receiver.url, "status": "delivered", "attempts": 2, "last_error": None}
    first_try, retry = receiver.received
    assert first_try.headers["webhook-id"] == retry.headers["webhook-id"]
    assert first_try.body == retry.body
    document = Webhook(secret).verify(retry.body, retry.headers)
    assert document["type"] == "job.completed"
    assert document["data"]["id"] == job_id
    assert document["data"]["result"]["download_url"]

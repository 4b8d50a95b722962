"""The Python client and the `vidq` command's client verbs, against a live server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from vidq.client import VidqAPIError, VidqClient

from .conftest import LiveServer
from .processes import VIDQ


def test_client_round_trip(live_server: LiveServer, clip: Path, tmp_path: Path) -> None:
    with VidqClient(live_server.url, live_server.key) as client:
        assert "mp4-h264" in {p["name"] for p in client.presets()}
        job = client.convert(clip, preset="gif", idempotency_key="once")
        assert job["status"] == "queued" and job["input"]["filename"] == clip.name
        assert client.convert(clip, preset="gif", idempotency_key="once")["id"] == job["id"]
        done = client.wait(job["id"], timeout=60)
        assert done["status"] == "completed" and done["result"]["content_type"] == "image/gif"
        saved = client.download(job["id"], tmp_path / "preview.gif")
        assert saved.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
        assert [j["id"] for j in client.jobs(status=["completed"])] == [job["id"]]
        client.delete(job["id"])
        with pytest.raises(VidqAPIError) as refused:
            client.job(job["id"])
        assert refused.value.status == 404 and refused.value.code == "not_found"


def test_cli_verbs(live_server: LiveServer, clip: Path, tmp_path: Path) -> None:
    env = {**os.environ, "VIDQ_URL": live_server.url, "VIDQ_API_KEY": live_server.key}

    def vidq(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*VIDQ, *args], env=env, capture_output=True, text=True, timeout=120, check=check
        )

    output = tmp_path / "out.mp4"
    converted = vidq(
        "convert", str(clip), "--preset", "mp4-h264", "-o", "width=80", "--output", str(output)
    )
    job = json.loads(converted.stdout)
    assert job["status"] == "completed" and job["result"]["video"]["width"] == 80
    assert output.stat().st_size == job["result"]["size_bytes"]
    listed = vidq("jobs").stdout
    assert job["id"] in listed and "completed" in listed
    assert json.loads(vidq("status", job["id"]).stdout)["id"] == job["id"]
    refused = vidq("convert", str(clip), "-o", "crf=99", check=False)
    assert refused.returncode == 1 and "invalid_option" in refused.stderr
    vidq("delete", job["id"])
    gone = vidq("status", job["id"], check=False)
    assert gone.returncode == 1 and "404 not_found" in gone.stderr

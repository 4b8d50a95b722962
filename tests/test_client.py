"""The Python client against a live server (the `vidq` command: test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidq.client import VidqAPIError, VidqClient

from .conftest import LiveServer


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

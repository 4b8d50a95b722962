"""Jobs the configured limits cannot convert: refused at submission, or explained when they fail."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vidq.config import Settings
from vidq.jobs.options import resolve_options
from vidq.media.command import build_command
from vidq.media.ffmpeg import describe_failure, run_ffmpeg
from vidq.media.probe import probe

from .conftest import LiveServer
from .helpers import assert_problem, post_convert

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"width": "7680", "upscale": "true"}, "width"),
        ({"width": "7680", "height": "4320", "upscale": "true", "preset": "mp4-h265"}, "width"),
        ({"height": "4320", "upscale": "true", "preset": "webm-vp9"}, "height"),
        ({"width": "5120", "upscale": "true", "preset": "mp4-av1"}, "width"),
    ],
)
def test_an_output_too_large_for_the_memory_limit_is_refused_at_submission(
    live_server: LiveServer, clip: Path, fields: dict[str, str], field: str
) -> None:
    with live_server.client() as client:
        body = assert_problem(post_convert(client, clip, **fields), 422, "invalid_option")
        assert [e["field"] for e in body["errors"]] == [field]
        assert "VIDQ_FFMPEG_MEMORY_BYTES" in body["detail"] and "4096 MiB" in body["detail"]
        assert client.get("/jobs").json()["jobs"] == [], "nothing was queued"


def test_an_output_within_the_limit_is_accepted(live_server: LiveServer, clip: Path) -> None:
    with live_server.client() as client:
        response = post_convert(client, clip, width="1280", upscale="true", preset="webm-vp9")
        assert response.status_code == 202, response.text
        assert client.delete(f"/job/{response.json()['id']}").status_code == 204


async def test_running_out_of_memory_is_named_in_the_error(tmp_path: Path, clip: Path) -> None:
    # Too little room for x264 at 1080p: ffmpeg fails inside the encoder.
    limit = 700 * MIB
    settings = Settings(data_dir=tmp_path, ffmpeg_memory_bytes=4096 * MIB)
    info = await probe(clip, settings)
    options = resolve_options({"width": "1920", "upscale": "true"})
    output = tmp_path / "out.mp4"
    argv = build_command(settings.ffmpeg_binary(), clip, output, options, info, settings)
    result = await run_ffmpeg(
        argv,
        settings=Settings(data_dir=tmp_path, ffmpeg_memory_bytes=limit),
        on_progress=lambda _: None,
        stop=asyncio.Event(),
        timeout_seconds=60,
        stall_seconds=30,
        max_output_bytes=100 * MIB,
    )
    assert result.returncode != 0
    message = describe_failure(result, clip, output, memory_bytes=limit)
    assert "out of memory" in message and "700 MiB" in message, message
    assert "VIDQ_FFMPEG_MEMORY_BYTES" in message

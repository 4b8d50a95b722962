"""On a bucket, an upload is probed from its head and tail, not fetched back whole to the API.

The API runs on moto's S3; every byte the API reads back from the bucket is counted at
the store (`S3Storage.read` for ranged reads, `S3Storage.local_copy` for whole copies).
The head and tail are made small here so that small clips are "large" inputs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import pytest

from vidq.jobs import input_probe
from vidq.storage.s3 import S3Storage

from .conftest import LiveServer, make_s3, make_settings, running_server
from .helpers import assert_problem, post_convert
from .media_clips import ffmpeg, make_random_bytes

KIB = 1024
HEAD, TAIL = 128 * KIB, 64 * KIB


@dataclass
class Fetched:
    """What the API read back from the bucket."""

    ranged_bytes: int = 0
    whole_copies: list[int] = field(default_factory=list)  # the size of each


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> Fetched:
    seen = Fetched()
    read, local_copy = S3Storage.read, S3Storage.local_copy

    async def counted_read(self: S3Storage, key: str, *args: Any) -> AsyncIterator[bytes]:
        async for chunk in read(self, key, *args):
            seen.ranged_bytes += len(chunk)
            yield chunk

    @asynccontextmanager
    async def counted_copy(self: S3Storage, key: str, scratch: Path) -> AsyncIterator[Path]:
        async with local_copy(self, key, scratch) as path:
            seen.whole_copies.append(path.stat().st_size)
            yield path

    monkeypatch.setattr(S3Storage, "read", counted_read)
    monkeypatch.setattr(S3Storage, "local_copy", counted_copy)
    monkeypatch.setattr(input_probe, "HEAD_BYTES", HEAD)
    monkeypatch.setattr(input_probe, "TAIL_BYTES", TAIL)
    return seen


@pytest.fixture
def live(s3: str, tmp_path: Path) -> Iterator[LiveServer]:
    make_s3(s3, "vidq-probe")
    settings = make_settings(
        tmp_path, workers=0, storage_url="s3://vidq-probe/files", s3_endpoint_url=s3
    )
    with running_server(settings) as server:
        yield server


@pytest.fixture(scope="module")
def mp4s(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 3 s clip, lossless (so ~0.5 MB), its index (moov) at the end and at the start."""
    root = tmp_path_factory.mktemp("probe-clips")
    end, start = root / "moov-at-end.mp4", root / "faststart.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc=size=640x360:rate=25:duration=3"),
        *("-f", "lavfi", "-i", "sine=duration=3"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-c:a", "aac", str(end)),
    )
    ffmpeg("-i", str(end), "-c", "copy", "-movflags", "+faststart", str(start))
    for path, moov_first in ((end, False), (start, True)):
        data = path.read_bytes()
        assert len(data) > 2 * (HEAD + TAIL)
        assert (data.find(b"moov") < data.find(b"mdat")) == moov_first
    return {"end": end, "start": start}


def facts_of(path: Path) -> tuple[float, int, int, str]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert container.duration is not None
        return (
            round(container.duration / av.time_base, 1),
            video.codec_context.width,
            video.codec_context.height,
            video.codec_context.name,
        )


@pytest.mark.parametrize("where", ["end", "start"])
def test_an_mp4_is_probed_from_its_head_and_tail_only(
    live: LiveServer, fetched: Fetched, mp4s: dict[str, Path], where: str
) -> None:
    clip = mp4s[where]
    with live.client() as client:
        answer = post_convert(client, clip, preset="mp4-h264")
        assert answer.status_code == 202, answer.text
        job = answer.json()
    assert fetched.whole_copies == []
    assert 0 < fetched.ranged_bytes <= HEAD + TAIL < clip.stat().st_size
    duration, width, height, codec = facts_of(clip)
    info = job["input"]
    assert round(info["duration_seconds"], 1) == duration
    assert (info["video"]["width"], info["video"]["height"]) == (width, height)
    assert info["video"]["codec"] == codec and info["audio"]["codec"] == "aac"


def test_when_head_and_tail_are_not_enough_the_whole_file_is_probed(
    live: LiveServer, fetched: Fetched, mp4s: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tail too short for the index at the end: the demuxer reads where nothing was fetched.
    monkeypatch.setattr(input_probe, "TAIL_BYTES", 1 * KIB)
    clip = mp4s["end"]
    with live.client() as client:
        answer = post_convert(client, clip, preset="mp4-h264")
        assert answer.status_code == 202, answer.text
    assert fetched.whole_copies == [clip.stat().st_size]
    assert answer.json()["input"]["video"]["width"] == 640


def test_hostile_inputs_are_refused_from_the_head(
    live: LiveServer, fetched: Fetched, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A head as large as what ffmpeg reads to recognise a format (up to 1 MiB).
    head = 2048 * KIB
    monkeypatch.setattr(input_probe, "HEAD_BYTES", head)
    noise = make_random_bytes(tmp_path / "noise.mp4", 2 * (head + TAIL))
    playlist = tmp_path / "list.mp4"
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:1"] + [
        f"#EXTINF:1,\nfile:///etc/passwd?{n:08}" for n in range(80000)
    ]
    playlist.write_text("\n".join(lines) + "\n#EXT-X-ENDLIST\n")
    assert playlist.stat().st_size > head + TAIL
    with live.client() as client:
        for path in (noise, playlist):
            assert_problem(post_convert(client, path, preset="mp4-h264"), 422, "unsupported_media")
    assert fetched.whole_copies == []
    assert fetched.ranged_bytes <= 2 * (head + TAIL)

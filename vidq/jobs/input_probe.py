"""Probing a stored input without fetching all of it back from a bucket.

A blob in a bucket has no path for the probe child to open, and fetching all of it to the
API's disk moves every byte of an upload twice. A demuxer needs little of a file: its
header, the first packets, and for some containers the end (an MP4 whose `moov` index was
written last, Matroska cues, an AVI index, the last timestamps of an MPEG-TS). So an input
larger than `HEAD_BYTES + TAIL_BYTES` is fetched as two ranged reads, its head and its
tail, into a sparse scratch file of its full size, and probed from those ranges only
(vidq.media.probe: the child marks any read outside them). If the demuxer wanted any other
byte, the answer is not trusted: the whole file is fetched and probed as before. The probe
child, its limits and whitelists are the same either way.

On a local store the input is probed where it lies.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from vidq.config import Settings
from vidq.media.info import MediaInfo
from vidq.media.probe import ProbeIncomplete, probe
from vidq.storage import Storage

MIB = 1024 * 1024
# What is fetched of a large input: enough for the headers and first packets of any usual
# file (ffmpeg reads up to 5 MB of packets to find its streams), and for an index at the
# end (an hour's MP4 `moov` is a few MiB).
HEAD_BYTES = 16 * MIB
TAIL_BYTES = 8 * MIB


async def probe_stored(storage: Storage, key: str, settings: Settings) -> MediaInfo:
    """Probe the input stored at `key`: in place on disk, else from its head and tail if
    those are enough, else from a whole copy."""
    if storage.local_path(key) is None:
        size = await storage.size(key)
        if size is None:
            raise FileNotFoundError(key)
        if size > HEAD_BYTES + TAIL_BYTES:
            ranges = [(0, HEAD_BYTES), (size - TAIL_BYTES, size)]
            async with _sparse_copy(storage, key, size, ranges, settings.tmp_dir) as path:
                try:
                    return await probe(path, settings, ranges=ranges)
                except ProbeIncomplete:
                    pass
    async with storage.local_copy(key, settings.tmp_dir) as path:
        return await probe(path, settings)


@asynccontextmanager
async def _sparse_copy(
    storage: Storage, key: str, size: int, ranges: list[tuple[int, int]], scratch_dir: Path
) -> AsyncIterator[Path]:
    """A scratch file of `size` bytes holding the blob's bytes in `ranges`, holes elsewhere."""
    scratch_dir.mkdir(parents=True, exist_ok=True)
    path = scratch_dir / f"probe-{uuid.uuid4().hex}"
    try:
        with path.open("wb") as file:
            for start, end in ranges:
                file.seek(start)
                async for chunk in storage.read(key, start, end - 1):
                    file.write(chunk)
            file.truncate(size)
        yield path
    finally:
        path.unlink(missing_ok=True)

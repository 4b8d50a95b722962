"""A streaming package's ZIP: every file of the package in one download (`download_url`).

The ZIP is written once, when the job completes, from the package's stored files into
`outputs/<job>.zip`. Entries are STORED (segments are already compressed video), so the
archive's size is known before a byte is written. Nothing is held whole in memory: each
file streams from storage through the ZIP encoder (zipstream-ng, run in a thread as it is
synchronous) into the storage writer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from zipstream import ZIP_STORED, ZipStream

from vidq.jobs import blobs
from vidq.jobs.output_files import OutputFile
from vidq.storage import Storage


class _Stopped(Exception):
    """The ZIP is no longer wanted (its writer failed or was cancelled)."""


async def store_package_zip(
    storage: Storage, job_id: str, files: Sequence[Mapping[str, Any]]
) -> int:
    """Write the ZIP of a job's stored package files (entries of `result.files`, none of role
    `main`) to `blobs.package_zip_key(job_id)`; returns its size in bytes.

    Each entry is named by its path (`master.m3u8`, `720p/seg_00001.m4s`). A file whose
    stored size is not its listed `size_bytes` fails the ZIP, which then leaves nothing.
    """
    loop = asyncio.get_running_loop()
    stopped = threading.Event()
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    for item in files:
        file = OutputFile.from_json(item)
        key = blobs.file_key(job_id, file.path, role=file.role)
        chunks = _blocking(storage.read(key), loop, stopped)
        archive.add(chunks, file.path, size=file.size_bytes)
    size = len(archive)
    encoded = iter(archive)
    writer = storage.writer(blobs.package_zip_key(job_id))
    try:
        while (chunk := await asyncio.to_thread(next, encoded, None)) is not None:
            await writer.write(chunk)
        if writer.bytes_written != size:
            raise RuntimeError(f"the ZIP came to {writer.bytes_written} bytes, not {size}")
        await writer.commit()
    except BaseException:
        stopped.set()
        await asyncio.shield(writer.abort())
        raise
    return size


def _blocking(
    chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop, stopped: threading.Event
) -> Iterator[bytes]:
    """The chunks of an async read, pulled one at a time from a thread through `loop`."""

    async def pull() -> bytes | None:
        try:
            return await anext(chunks)
        except StopAsyncIteration:
            return None

    while not stopped.is_set():
        chunk = asyncio.run_coroutine_threadsafe(pull(), loop).result()
        if chunk is None:
            return
        yield chunk
    raise _Stopped()

"""Blobs in memory: the storage fake for tests of workers and the janitor without a disk or bucket.

It keeps the contract of `Storage` (nothing visible before commit, abort leaves nothing,
ranged reads, prefix listing), and like a bucket it has no local paths: `local_copy`
writes a temporary file into the scratch directory, as the S3 backend does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from vidq.storage.base import AppendState, ServedByTheApi, check_key


class MemoryWriter:
    """Collects one blob's bytes; published on commit."""

    def __init__(self, store: MemoryStorage, key: str) -> None:
        self._store = store
        self._key = key
        self._chunks: list[bytes] = []
        self.bytes_written = 0

    async def write(self, chunk: bytes) -> None:
        self._chunks.append(bytes(chunk))
        self.bytes_written += len(chunk)

    async def commit(self) -> None:
        self._store.blobs[self._key] = (b"".join(self._chunks), time.time())
        self._chunks = []

    async def abort(self) -> None:
        self._chunks = []


class MemoryAppender:
    """Appends to a staged blob `<stage>/data`, published under the key when finished."""

    def __init__(self, store: MemoryStorage, key: str, staged: str, size: int) -> None:
        self._store = store
        self._key = key
        self._staged = staged
        data = store.blobs.get(staged, (b"", 0.0))[0]
        if len(data) < size:
            raise OSError(f"the staged blob holds {len(data)} bytes, not {size}")
        self._data = bytearray(data[:size])
        self._start = size

    async def write(self, chunk: bytes) -> None:
        self._data += chunk

    async def save(self) -> AppendState:
        self._store.blobs[self._staged] = (bytes(self._data), time.time())
        return {}

    async def discard(self) -> None:
        del self._data[self._start :]

    async def finish(self) -> None:
        self._store.blobs[self._key] = (bytes(self._data), time.time())
        self._store.blobs.pop(self._staged, None)


class MemoryStorage(ServedByTheApi):
    """A dict of key -> (bytes, modification time)."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, float]] = {}

    def writer(self, key: str) -> MemoryWriter:
        check_key(key)
        return MemoryWriter(self, key)

    @asynccontextmanager
    async def local_copy(self, key: str, scratch_dir: Path) -> AsyncIterator[Path]:
        check_key(key)
        if key not in self.blobs:
            raise FileNotFoundError(key)
        scratch_dir.mkdir(parents=True, exist_ok=True)
        path = scratch_dir / f"copy-{key.replace('/', '_')}"
        path.write_bytes(self.blobs[key][0])
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    async def put_file(self, key: str, path: Path) -> None:
        check_key(key)
        self.blobs[key] = (path.read_bytes(), time.time())
        path.unlink()

    def local_path(self, key: str) -> Path | None:
        return None

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        check_key(key)
        if key not in self.blobs:
            raise FileNotFoundError(key)
        data = self.blobs[key][0]
        yield data[start : None if end is None else end + 1]

    async def size(self, key: str) -> int | None:
        check_key(key)
        blob = self.blobs.get(key)
        return None if blob is None else len(blob[0])

    async def delete(self, key: str) -> None:
        check_key(key)
        self.blobs.pop(key, None)

    async def keys(self, prefix: str) -> AsyncIterator[tuple[str, float]]:
        folder = prefix.strip("/") + "/"
        for key, (_, modified) in sorted(self.blobs.items()):
            if key.startswith(folder):
                yield key, modified

    async def ping(self) -> None:
        return None

    async def open_appender(
        self, key: str, stage: str, state: Mapping[str, Any], size: int
    ) -> MemoryAppender:
        check_key(key)
        check_key(stage)
        return MemoryAppender(self, key, f"{stage}/data", size)

    async def tidy_stage(self, stage: str, state: Mapping[str, Any]) -> None:
        return None

    async def abort_append(self, key: str, stage: str, state: Mapping[str, Any]) -> None:
        self.blobs.pop(f"{stage}/data", None)

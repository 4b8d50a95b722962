"""Where a resumable upload's chunk goes: into the store and through its hashes, overlapped.

A chunk's bytes are hashed twice over - for its `Upload-Checksum`, if it has one, and
for the SHA-256 of the whole upload - and written to the store. `ChunkSink` does both for
one buffer in threads (hashlib lets go of the GIL for large buffers: the hashes and the
write run side by side) while the event loop receives the next one, keeping their order;
the loop never hashes.

The whole upload's SHA-256 is carried from one request to the next in `FileDigests`, by
the process that received every byte so far: a digest is good only for the offset it
was taken at. When a request lands on another process (or after a restart, or after a
request whose bytes were dropped) the running digest is lost, and the finished upload is
hashed by reading it back instead (`vidq.jobs.resumable`): a hash state cannot be
carried portably between processes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from typing import Any

from vidq.storage import Appender

# Running digests kept at most (each a few hundred bytes); the oldest goes first.
MAX_DIGESTS = 4096


class FileDigests:
    """The running SHA-256 of uploads this process received every byte of, by upload id."""

    def __init__(self, limit: int = MAX_DIGESTS) -> None:
        self.limit = limit
        self._digests: OrderedDict[str, tuple[int, Any]] = OrderedDict()

    def take(self, upload_id: str, offset: int) -> Any | None:
        """The digest of the upload's first `offset` bytes (a new one at 0), or None if
        this process does not have it. Taken: `keep` it again once the bytes are kept."""
        if offset == 0:
            self._digests.pop(upload_id, None)
            return hashlib.sha256()
        entry = self._digests.pop(upload_id, None)
        if entry is None or entry[0] != offset:
            return None
        return entry[1]

    def keep(self, upload_id: str, offset: int, digest: Any) -> None:
        """Remember the digest of the upload's first `offset` bytes."""
        self._digests[upload_id] = (offset, digest)
        while len(self._digests) > self.limit:
            self._digests.popitem(last=False)


class ChunkSink:
    """Writes buffers to an appender and feeds them to hashes, one buffer in flight."""

    def __init__(self, appender: Appender, hashers: list[Any]) -> None:
        self._appender = appender
        self._hashers = hashers
        self._pending: asyncio.Task[None] | None = None

    async def _consume(self, data: bytes) -> None:
        await asyncio.gather(
            self._appender.write(data),
            *(asyncio.to_thread(hasher.update, data) for hasher in self._hashers),
        )

    async def add(self, data: bytes) -> None:
        """Queue a buffer, once the one before it is written and hashed."""
        await self.drain()
        if data:
            self._pending = asyncio.create_task(self._consume(data))

    async def drain(self) -> None:
        """Wait until every buffer is written and hashed (raising what that raised)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def abandon(self) -> None:
        """Let the buffer in flight finish, whatever it raises: its bytes are being dropped.
        (It is not cancelled: a write already in a thread would go on after the appender
        discarded what it holds.)"""
        pending, self._pending = self._pending, None
        if pending is not None:
            await asyncio.wait({pending})
            if not pending.cancelled():
                pending.exception()  # retrieved, and dropped with the bytes

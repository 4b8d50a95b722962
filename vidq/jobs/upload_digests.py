"""The SHA-256 of a resumable upload, carried from one of its requests to the next.

A chunk's bytes are hashed as they arrive, like a one-shot upload's: for the SHA-256 of
the whole upload, and for the chunk's `Upload-Checksum` if it has one. The whole
upload's digest is carried across requests in `FileDigests` by the process that received
every byte so far: a digest is good only for the offset it was taken at. When a request
lands on another process (or after a restart, or after a request whose bytes were
dropped) the running digest is lost, and the finished upload is hashed by reading it
back instead (`vidq.jobs.resumable`): a hash state cannot be carried portably between
processes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

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

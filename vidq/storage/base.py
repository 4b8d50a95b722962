"""The blob store interface: stream in, stream out, hand ffmpeg a local file, sign a URL,
and build a blob over many requests (a resumable upload)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

# A store's own record of a blob being appended to across requests (JSON, kept by the caller).
AppendState = dict[str, Any]


def check_key(key: str) -> None:
    """Raise ValueError for a key that could leave the store (empty, absolute, `..`)."""
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"invalid storage key {key!r}")


class ServedByTheApi:
    """What a store whose bytes the API serves itself has in common (a local directory,
    memory): no presigned URLs, and deleting many keys is deleting each."""

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove each of `keys`; no error for those already gone."""
        for key in keys:
            await self.delete(key)

    async def presigned_url(
        self,
        key: str,
        expires_seconds: int,
        *,
        content_type: str | None = None,
        disposition: str | None = None,
    ) -> str | None:
        """None: clients fetch these bytes through the API."""
        return None


class BlobWriter(Protocol):
    """An upload in progress: bytes go in as they arrive; nothing is visible until commit."""

    bytes_written: int

    async def write(self, chunk: bytes) -> None: ...

    async def commit(self) -> None: ...

    async def abort(self) -> None: ...


class Appender(Protocol):
    """One request's bytes added to a blob written over many requests (a resumable upload).

    The caller records the state `save()` returns and passes it to the next request's
    `open_appender`; until `finish()` nothing is visible under the blob's key. Any API
    process may continue the blob: what is not yet part of it is staged in the store
    itself, never on the disk of the process that received it.
    """

    async def write(self, chunk: bytes) -> None: ...

    async def save(self) -> AppendState:
        """Keep every byte written; the state to record for the next request."""
        ...

    async def discard(self) -> None:
        """Drop this request's bytes: the state recorded before stays true."""
        ...

    async def finish(self) -> None:
        """Publish everything appended (this request's bytes too) as the blob."""
        ...


class Storage(Protocol):
    """Where inputs and outputs live: a local directory or an S3-compatible bucket."""

    def writer(self, key: str) -> BlobWriter:
        """Start writing the blob `key`; `commit()` publishes it, `abort()` leaves nothing."""
        ...

    def local_copy(self, key: str, scratch_dir: Path) -> AbstractAsyncContextManager[Path]:
        """The blob as a local file for ffmpeg (the file itself, or a temporary download)."""
        ...

    async def put_file(self, key: str, path: Path) -> None:
        """Store a finished local file as `key` (moving it when it can)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The blob's path on this machine, if it has one (local storage)."""
        ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream the bytes [start, end] (inclusive) of a blob."""
        ...

    async def size(self, key: str) -> int | None:
        """The blob's size, or None if it does not exist."""
        ...

    async def delete(self, key: str) -> None:
        """Remove a blob; no error if it is already gone."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove several blobs (in as few requests as the store allows); missing ones are fine."""
        ...

    async def presigned_url(
        self,
        key: str,
        expires_seconds: int,
        *,
        content_type: str | None = None,
        disposition: str | None = None,
    ) -> str | None:
        """A short-lived URL that fetches the blob straight from the store, answered with
        `content_type` and `disposition` (Content-Disposition); None if the store has none."""
        ...

    def keys(self, prefix: str) -> AsyncIterator[tuple[str, float]]:
        """Every blob under `prefix` with its modification time (Unix seconds)."""
        ...

    async def ping(self) -> None:
        """Raise if the store does not answer."""
        ...

    async def open_appender(
        self, key: str, stage: str, state: Mapping[str, Any], size: int
    ) -> Appender:
        """Continue the blob `key` (nothing published yet) at `size` bytes, as `state`
        records them; bytes not yet part of it are staged under the prefix `stage`."""
        ...

    async def tidy_stage(self, stage: str, state: Mapping[str, Any]) -> None:
        """Remove what is staged under `stage` that `state` no longer refers to."""
        ...

    async def abort_append(self, key: str, stage: str, state: Mapping[str, Any]) -> None:
        """Remove every byte of an unfinished appended blob (staged, or parts in a bucket)."""
        ...

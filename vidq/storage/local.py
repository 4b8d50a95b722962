"""Blobs in a local directory: uploads land in a partial file and are renamed into place."""

from __future__ import annotations

import asyncio
import errno
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from vidq.datadir import DIR_MODE, FILE_MODE
from vidq.errors import Busy, StorageFull

CHUNK_BYTES = 1024 * 1024
PARTIAL_DIR = ".partial"


def _check_key(key: str) -> None:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"invalid storage key {key!r}")


class LocalWriter:
    """Writes one blob into `.partial/`, renamed to its key on commit."""

    def __init__(self, root: Path, key: str) -> None:
        self.final = root / key
        self.partial = root / PARTIAL_DIR / f"{uuid.uuid4().hex}.part"
        self.partial.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        try:
            self._fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):  # out of files: a moment's wait helps
                raise Busy("The server has no file to spare for the upload.") from exc
            raise
        self.bytes_written = 0

    async def write(self, chunk: bytes) -> None:
        try:
            await asyncio.to_thread(self._write_all, chunk)
        except OSError as exc:
            await self.abort()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise StorageFull() from exc
            raise
        self.bytes_written += len(chunk)

    def _write_all(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    async def commit(self) -> None:
        os.close(self._fd)
        self._fd = -1
        self.final.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.replace(self.partial, self.final)

    async def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.partial.unlink(missing_ok=True)


class LocalStorage:
    """A directory of blobs, addressed by relative keys such as `inputs/<job>`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)

    def writer(self, key: str) -> LocalWriter:
        _check_key(key)
        return LocalWriter(self.root, key)

    @asynccontextmanager
    async def local_copy(self, key: str, scratch_dir: Path) -> AsyncIterator[Path]:
        _check_key(key)
        path = self.root / key
        if not path.is_file():
            raise FileNotFoundError(key)
        yield path

    async def put_file(self, key: str, path: Path) -> None:
        _check_key(key)
        final = self.root / key
        final.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, FILE_MODE)  # a file ffmpeg made: private whatever the umask
        try:
            os.replace(path, final)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            await asyncio.to_thread(_copy_then_remove, path, final)

    def local_path(self, key: str) -> Path | None:
        _check_key(key)
        return self.root / key

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        _check_key(key)
        with open(self.root / key, "rb") as handle:  # noqa: ASYNC230 - chunked reads below go to a thread
            handle.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                size = CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining)
                chunk = await asyncio.to_thread(handle.read, size)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    async def size(self, key: str) -> int | None:
        _check_key(key)
        try:
            return (self.root / key).stat().st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        _check_key(key)
        (self.root / key).unlink(missing_ok=True)

    async def delete_many(self, keys: Sequence[str]) -> None:
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
        return None  # the API serves these bytes itself

    async def keys(self, prefix: str) -> AsyncIterator[tuple[str, float]]:
        base = self.root / prefix
        if not base.is_dir():
            return
        for path in base.rglob("*"):
            if path.is_file():
                yield path.relative_to(self.root).as_posix(), path.stat().st_mtime

    async def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"storage directory is not writable: {self.root.name}")


def _copy_then_remove(source: Path, target: Path) -> None:
    import shutil

    partial = target.with_name(target.name + ".part")
    shutil.copyfile(source, partial)
    os.chmod(partial, FILE_MODE)
    os.replace(partial, target)
    source.unlink()

"""Blobs in a local directory: uploads land in a partial file and are renamed into place.

A blob appended to over many requests (a resumable upload) is one file, `<stage>/data`,
appended to in place and renamed to its key when finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from vidq.datadir import DIR_MODE, FILE_MODE
from vidq.errors import Busy, StorageFull
from vidq.storage.base import AppendState, ServedByTheApi, check_key

CHUNK_BYTES = 1024 * 1024
PARTIAL_DIR = ".partial"
STAGED_DATA = "data"


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
        _write_all(self._fd, chunk)

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


class LocalAppender:
    """Appends one request's bytes to a staged file, which is renamed to the key when finished."""

    def __init__(self, data: Path, final: Path, size: int) -> None:
        data.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self._data = data
        self._final = final
        self._start = size
        self._fd = os.open(data, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        try:
            staged = os.fstat(self._fd).st_size
            if staged < size:
                raise OSError(errno.EIO, f"the staged file holds {staged} bytes, not {size}")
            # Bytes past `size` came from a request that was never recorded: not part of it.
            os.ftruncate(self._fd, size)
            os.lseek(self._fd, size, os.SEEK_SET)
        except BaseException:
            os.close(self._fd)
            raise

    async def write(self, chunk: bytes) -> None:
        try:
            await asyncio.to_thread(_write_all, self._fd, chunk)
        except OSError as exc:
            await self.discard()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise StorageFull() from exc
            raise

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def save(self) -> AppendState:
        self._close()
        return {}

    async def discard(self) -> None:
        if self._fd >= 0:
            os.ftruncate(self._fd, self._start)
        self._close()

    async def finish(self) -> None:
        self._close()
        self._final.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.replace(self._data, self._final)
        with contextlib.suppress(OSError):
            self._data.parent.rmdir()


class LocalStorage(ServedByTheApi):
    """A directory of blobs, addressed by relative keys such as `inputs/<job>`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)

    def writer(self, key: str) -> LocalWriter:
        check_key(key)
        return LocalWriter(self.root, key)

    @asynccontextmanager
    async def local_copy(self, key: str, scratch_dir: Path) -> AsyncIterator[Path]:
        check_key(key)
        path = self.root / key
        if not path.is_file():
            raise FileNotFoundError(key)
        yield path

    async def put_file(self, key: str, path: Path) -> None:
        check_key(key)
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
        check_key(key)
        return self.root / key

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        check_key(key)
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
        check_key(key)
        try:
            return (self.root / key).stat().st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        check_key(key)
        (self.root / key).unlink(missing_ok=True)

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

    async def open_appender(
        self, key: str, stage: str, state: Mapping[str, Any], size: int
    ) -> LocalAppender:
        check_key(key)
        check_key(stage)
        return LocalAppender(self.root / stage / STAGED_DATA, self.root / key, size)

    async def tidy_stage(self, stage: str, state: Mapping[str, Any]) -> None:
        return None  # the staged file is all there is, and it is always in use

    async def abort_append(self, key: str, stage: str, state: Mapping[str, Any]) -> None:
        check_key(stage)
        folder = self.root / stage
        (folder / STAGED_DATA).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()


def _write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _copy_then_remove(source: Path, target: Path) -> None:
    import shutil

    partial = target.with_name(target.name + ".part")
    shutil.copyfile(source, partial)
    os.chmod(partial, FILE_MODE)
    os.replace(partial, target)
    source.unlink()

"""Where a client remembers its unfinished resumable uploads, so that a later run continues one.

An entry names a service, a file (by its resolved path) and the URL of the upload of it,
with what the file was when the upload began: its size, its modification time and the
SHA-256 of its first MiB. A later run continues the upload only if the file is still the
same by all three; a file changed meanwhile is sent anew. The entries live in one small
JSON file (`uploads.json` under `$XDG_CACHE_HOME/vidq`, by default `~/.cache/vidq`),
read and rewritten whole under a lock, so that several runs at once keep each other's
entries. Losing it costs only a new upload. Entries older than the service keeps an
upload are dropped as it is rewritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HEAD_BYTES = 1024 * 1024
STORE_FILE = "uploads.json"
# A service keeps an unfinished upload 24 h after its last request by default; an entry is
# kept a week, so that a service set to keep them longer still finds its own.
ENTRY_DAYS = 7


@dataclass(frozen=True)
class FileIdentity:
    """A file as it is now: where, how large, when last changed, and a hash of its start."""

    path: str
    size: int
    mtime_ns: int
    head_sha256: str

    @classmethod
    def of(cls, path: str | Path) -> FileIdentity:
        resolved = Path(path).resolve()
        with resolved.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            head = hashlib.sha256(handle.read(HEAD_BYTES)).hexdigest()
        return cls(str(resolved), stat.st_size, stat.st_mtime_ns, head)


@dataclass(frozen=True)
class StoredUpload:
    """An unfinished upload remembered: the file as it was when it began, and its URL."""

    service: str
    file: FileIdentity
    upload_url: str
    saved_at: float


def default_store_path() -> Path:
    """`$XDG_CACHE_HOME/vidq/uploads.json`, or `~/.cache/vidq/uploads.json`."""
    cache = os.environ.get("XDG_CACHE_HOME") or ""
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return base / "vidq" / STORE_FILE


class UploadStore:
    """Unfinished resumable uploads, by service and file, in one JSON file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()

    def find(self, service: str, path: str | Path) -> StoredUpload | None:
        """The upload remembered for this file on this service (the file may have changed
        since: compare its `file` with `FileIdentity.of(path)`)."""
        wanted = str(Path(path).resolve())
        for entry in self._read():
            if entry.service == service and entry.file.path == wanted:
                return entry
        return None

    def remember(self, service: str, file: FileIdentity, upload_url: str) -> None:
        """Keep `upload_url` as the upload of `file` on `service` (replacing any other)."""
        with self._locked() as entries:
            entries[:] = [e for e in entries if (e.service, e.file.path) != (service, file.path)]
            entries.append(StoredUpload(service, file, upload_url, time.time()))

    def forget(self, service: str, path: str | Path) -> None:
        """Drop the entry of this file on this service, if there is one."""
        wanted = str(Path(path).resolve())
        with self._locked() as entries:
            entries[:] = [e for e in entries if (e.service, e.file.path) != (service, wanted)]

    def _read(self) -> list[StoredUpload]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return _parse(text)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[StoredUpload]]:
        """The entries, to change in the block; written back (atomically) after it."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self._read()
            yield entries
            oldest = time.time() - ENTRY_DAYS * 86400
            kept = [asdict(e) for e in entries if e.saved_at >= oldest]
            partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                json.dump({"uploads": kept}, out, indent=1)
            partial.replace(self.path)


def _parse(text: str) -> list[StoredUpload]:
    """The entries of the store's text; a damaged store (or entry) is as if empty."""
    try:
        document: Any = json.loads(text)
    except ValueError:
        return []
    entries = []
    for raw in document.get("uploads", []) if isinstance(document, dict) else []:
        try:
            entries.append(
                StoredUpload(
                    service=str(raw["service"]),
                    file=FileIdentity(**raw["file"]),
                    upload_url=str(raw["upload_url"]),
                    saved_at=float(raw["saved_at"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return entries

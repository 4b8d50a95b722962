"""The data directory: what vidq keeps in it, private to the user vidq runs as.

It holds the SQLite database (with the download-signing key and every owner's webhook
secret), the first API key, the node id and lock, scratch space and, by default, every
input and output. The server commands make the process's umask 077 before anything
else, so whatever vidq and its ffmpeg children create is private (directories 0700,
files 0600); `secure` makes the directory so and takes group and other permissions off
what vidq keeps in it that an earlier version, or someone by hand, left open, and says
so in the log. Anything else in the directory is not vidq's and is left alone.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("vidq")

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
_GROUP_AND_OTHER = 0o077

DATABASE_FILE = "vidq.db"  # the default SQLite database
API_KEY_FILE = "api-key"  # the first API key
NODE_ID_FILE = "node-id"  # this machine's name in the job leases of its workers
WORKER_LOCK_FILE = "worker.lock"  # held by the process running workers here
STORAGE_DIR = "files"  # the default file store
SCRATCH_DIR = "tmp"  # conversions in progress
VIDQ_ENTRIES = (
    DATABASE_FILE,
    f"{DATABASE_FILE}-wal",
    f"{DATABASE_FILE}-shm",
    API_KEY_FILE,
    NODE_ID_FILE,
    WORKER_LOCK_FILE,
    STORAGE_DIR,
    SCRATCH_DIR,
)


def private_by_default() -> None:
    """From now on, everything this process and its children create is private to its user."""
    os.umask(PRIVATE_UMASK)


def is_new(data_dir: Path) -> bool:
    """Whether `data_dir` is a new data directory: it does not exist yet, or holds nothing."""
    try:
        with os.scandir(data_dir) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return True


def secure(data_dir: Path, *, also: Iterable[Path] = ()) -> None:
    """Make `data_dir` (created if need be), what vidq keeps in it, and the files `also`,
    readable by their owner only; log what had to be tightened."""
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tightened = _tighten(data_dir)
    for name in VIDQ_ENTRIES:
        tightened += _tighten_tree(data_dir / name)
    for path in also:
        tightened += _tighten(path)
    if tightened:
        log.warning(
            "%d file(s) or directories in the data directory %s (or the database's files) "
            "were open to other users; they are now private to the user vidq runs as",
            tightened,
            data_dir,
        )


def write_private(path: Path, text: str) -> None:
    """Write a new file only its owner may read; FileExistsError if there is one already."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), FILE_MODE)  # whatever the umask
        handle.write(text)


def _tighten_tree(top: Path) -> int:
    """`_tighten` a file, or a directory and everything in it; how many it changed."""
    tightened = _tighten(top)
    if top.is_dir() and not top.is_symlink():
        for root, dirs, files in os.walk(top):
            for name in (*dirs, *files):
                tightened += _tighten(Path(root, name))
    return tightened


def _tighten(path: Path) -> int:
    """Take group and other permissions off one file or directory (not a symbolic link's
    target); 1 if it had any, else 0."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return 0  # removed meanwhile (another process's janitor)
    if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & _GROUP_AND_OTHER:
        return 0
    try:
        os.chmod(path, stat.S_IMODE(mode) & ~_GROUP_AND_OTHER)
    except FileNotFoundError:
        return 0
    except PermissionError:
        log.error("cannot make %s private: it belongs to another user", path)
        return 0
    return 1

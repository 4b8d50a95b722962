"""Every blob a job owns, named in one place.

A job owns its input (`inputs/<job>`) until it ends, and its outputs once completed: the
main file (`outputs/<job>.<ext>`) and any further files (a streaming package's playlists
and segments, a poster, a storyboard) under `outputs/<job>/`. Delete, expiry, cancel and
the janitor work on that set through this module, never on a key spelled elsewhere.

One more blob belongs to no job: `database-id`, the mark naming the database whose jobs
own the store's blobs (its `database_id`). A process writes it if the store has none (at
start, and the janitor before it sweeps); the janitor removes blobs no job owns only from
a store marked with its own database, since to a new or replaced database every blob
looks like an orphan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from vidq.storage import Storage

INPUTS = "inputs"
OUTPUTS = "outputs"
# Prefixes the janitor sweeps for blobs no job owns. `.partial` holds writes in progress.
SWEPT_PREFIXES = (INPUTS, OUTPUTS, ".partial")
# Names the database the store's blobs belong to.
DATABASE_MARK = "database-id"

_JOB_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_OWNED_KEY = re.compile(rf"(?P<kind>{INPUTS}|{OUTPUTS})/(?P<job>{_JOB_ID})(?:$|[./])")


@dataclass(frozen=True)
class BlobOwner:
    """Which job a stored key belongs to, and whether it is that job's input or output."""

    job_id: str
    kind: Literal["input", "output"]


def input_key(job_id: str) -> str:
    """The key of a job's input."""
    return f"{INPUTS}/{job_id}"


def output_key(job_id: str, extension: str) -> str:
    """The key of a job's main output file."""
    return f"{OUTPUTS}/{job_id}.{extension}"


def output_file_key(job_id: str, path: str) -> str:
    """The key of one more file of a job's output (`path` relative to the job, checked)."""
    if not path or path.startswith("/") or ".." in path.split("/"):
        raise ValueError(f"not a path inside a job: {path!r}")
    return f"{OUTPUTS}/{job_id}/{path}"


def owner_of(key: str) -> BlobOwner | None:
    """The job a key belongs to, or None for a key no job can own."""
    match = _OWNED_KEY.match(key)
    if match is None:
        return None
    return BlobOwner(match["job"], "input" if match["kind"] == INPUTS else "output")


async def delete_input(storage: Storage, job_id: str) -> None:
    """Remove a job's input (no error if it is already gone)."""
    await storage.delete(input_key(job_id))


async def delete_outputs(storage: Storage, job_id: str, main_key: str | None) -> None:
    """Remove every output file of a job: the main file and everything under its folder."""
    if main_key:
        await storage.delete(main_key)
    folder = f"{OUTPUTS}/{job_id}"
    keys = [key async for key, _ in storage.keys(folder)]
    for key in keys:
        await storage.delete(key)


async def delete_all(storage: Storage, job_id: str, main_output_key: str | None) -> None:
    """Remove every blob a job owns."""
    await delete_input(storage, job_id)
    await delete_outputs(storage, job_id, main_output_key)


async def marked_database(storage: Storage) -> str | None:
    """The `database_id` the store is marked with, or None if it has no mark."""
    try:
        data = b"".join([chunk async for chunk in storage.read(DATABASE_MARK)])
    except FileNotFoundError:
        return None
    return data.decode(errors="replace").strip() or None


async def mark_database(storage: Storage, database_id: str) -> str:
    """Mark the store as the database's if it has no mark yet; the database it is marked with."""
    marked = await marked_database(storage)
    if marked is not None:
        return marked
    writer = storage.writer(DATABASE_MARK)
    await writer.write(f"{database_id}\n".encode())
    await writer.commit()
    # Two processes of different databases may have raced: the last to write won.
    return await marked_database(storage) or database_id

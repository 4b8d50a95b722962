"""Every blob a job owns, named in one place.

A job owns its input (`inputs/<job>`), and the overlay parts that came with it
(`inputs/<job>.watermark`, `inputs/<job>.subtitles`) and, chunked, the encoded parts of its
video (`inputs/<job>.chunks/`), until it ends, and its outputs once completed: the
main file (`outputs/<job>.<ext>`; for a streaming package, its ZIP `outputs/<job>.zip`) and
any further files (a package's playlists and segments, a poster, a storyboard) under
`outputs/<job>/`. `file_key` says where each file a job lists in `result.files` is stored.
Delete, expiry, cancel and the janitor work on that set through this module, never on a
key spelled elsewhere.

A resumable (tus) upload writes straight to the input key of the job it will become
(fixed when the upload is created), and stages what is not yet part of it (a local
file being appended to, a bucket's short tail) under `uploads/<upload>/`; both belong
to the upload until it expires or becomes a job.

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

MAIN_ROLE = "main"

INPUTS = "inputs"
OUTPUTS = "outputs"
UPLOADS = "uploads"
# Prefixes the janitor sweeps for blobs no job owns. `.partial` holds writes in progress.
SWEPT_PREFIXES = (INPUTS, OUTPUTS, UPLOADS, ".partial")
# The overlay parts a job's input may come with, each stored beside it (`part_key`).
PART_ROLES = ("watermark", "subtitles")
# Names the database the store's blobs belong to.
DATABASE_MARK = "database-id"

_JOB_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# A character no path inside a job may hold: controls (NUL among them) and the backslash.
_BAD_PATH_CHARACTER = re.compile(r"[\x00-\x1f\x7f\\]")
_MAX_PATH_LENGTH = 1024
_OWNED_KEY = re.compile(rf"(?P<kind>{INPUTS}|{OUTPUTS}|{UPLOADS})/(?P<job>{_JOB_ID})(?:$|[./])")
_KINDS: dict[str, Literal["input", "output", "upload"]] = {
    INPUTS: "input",
    OUTPUTS: "output",
    UPLOADS: "upload",
}


@dataclass(frozen=True)
class BlobOwner:
    """Which job (or, for `upload`, which resumable upload) a stored key belongs to, and
    whether it is that job's input or output or the upload's staged bytes."""

    job_id: str
    kind: Literal["input", "output", "upload"]


def input_key(job_id: str) -> str:
    """The key of a job's input."""
    return f"{INPUTS}/{job_id}"


def part_key(job_id: str, role: str) -> str:
    """The key of an overlay part that came with a job's input (a role of PART_ROLES)."""
    if role not in PART_ROLES:
        raise ValueError(f"not an overlay part: {role!r}")
    return f"{INPUTS}/{job_id}.{role}"


def chunk_key(job_id: str, index: int, extension: str) -> str:
    """The key of one encoded part of a chunked job's video, kept with its input until the
    join (`inputs/<job>.chunks/`)."""
    return f"{INPUTS}/{job_id}.chunks/{index:04d}.{extension}"


def upload_stage(upload_id: str) -> str:
    """The prefix under which a resumable upload stages bytes not yet part of its blob."""
    return f"{UPLOADS}/{upload_id}"


def output_key(job_id: str, extension: str) -> str:
    """The key of a job's main output file."""
    return f"{OUTPUTS}/{job_id}.{extension}"


def package_zip_key(job_id: str) -> str:
    """The key of a streaming package's ZIP, which is also the job's main output key."""
    return output_key(job_id, "zip")


def is_job_path(path: str) -> bool:
    """Whether `path` names a file inside a job: relative, made of plain `/`-separated names
    (no empty, `.` or `..` segment), with no backslash or control character."""
    return (
        0 < len(path) <= _MAX_PATH_LENGTH
        and _BAD_PATH_CHARACTER.search(path) is None
        and all(segment not in ("", ".", "..") for segment in path.split("/"))
    )


def output_file_key(job_id: str, path: str) -> str:
    """The key of one more file of a job's output (`path` relative to the job, checked)."""
    if not is_job_path(path):
        raise ValueError(f"not a path inside a job: {path!r}")
    return f"{OUTPUTS}/{job_id}/{path}"


def file_key(job_id: str, path: str, *, role: str, main_key: str | None = None) -> str:
    """Where one file of a job's output (an entry of `result.files`) is stored.

    The file of role `main` is the job's main output, at `main_key` (`output_key(job, ext)`,
    the job's `output_key` once completed); every other file is at `output_file_key`.
    """
    if role == MAIN_ROLE:
        if main_key is None:
            raise ValueError("the main file of an output is stored at the job's output key")
        return main_key
    return output_file_key(job_id, path)


def owner_of(key: str) -> BlobOwner | None:
    """The job (or upload) a key belongs to, or None for a key none can own."""
    match = _OWNED_KEY.match(key)
    if match is None:
        return None
    return BlobOwner(match["job"], _KINDS[match["kind"]])


async def delete_input(storage: Storage, job_id: str) -> None:
    """Remove a job's input and its overlay parts (no error if they are already gone)."""
    await storage.delete_many([input_key(job_id), *(part_key(job_id, r) for r in PART_ROLES)])


async def delete_chunks(storage: Storage, job_id: str) -> None:
    """Remove the encoded parts of a chunked job's video (its coordinator does, once they
    are joined or the job ended; the janitor removes any left after the job ended)."""
    chunks = [key async for key, _ in storage.keys(f"{INPUTS}/{job_id}.chunks")]
    if chunks:
        await storage.delete_many(chunks)


async def delete_outputs(storage: Storage, job_id: str, main_key: str | None) -> None:
    """Remove every output file of a job: the main file and everything under its folder."""
    if main_key:
        await storage.delete(main_key)
    folder = f"{OUTPUTS}/{job_id}"
    keys = [key async for key, _ in storage.keys(folder)]
    await storage.delete_many(keys)


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

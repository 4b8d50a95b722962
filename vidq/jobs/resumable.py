"""Resumable uploads (tus 1.0.0): create, continue, finish, end, and hand over to a job.

The protocol's HTTP (headers, status codes) is `vidq.api.routes_tus`; this module owns
what an upload is. An upload's row is the truth about it: its length, the bytes kept so
far (`offset_bytes`), and the store's record of them (`store_state`). Its bytes go
straight into the store as they arrive, to the input key of the job it will become (a
local file appended to, or a bucket's multipart upload with its short tail staged in
the bucket), so any API process can take the next request. One request writes at a
time: it holds the row's lock (renewed while the body streams) and records what it kept
under that lock. A chunk whose checksum does not match, or that would pass the upload's
length, is dropped whole; a body cut short keeps what arrived (unless it carried a
checksum, which then cannot be checked).

A finished upload's SHA-256 is carried across its requests by the process that received
them (`vidq.jobs.upload_digests`); when they came through several processes, it is
computed once, by reading the finished blob back (a hash state cannot be carried portably
from one process to the next). `POST /convert` takes a
finished upload (`take`), and gives it back if that request fails (`give_back`); an
upload that is not taken before it expires is removed by the janitor (`sweep_expired`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vidq.clock import utcnow
from vidq.db.database import Database
from vidq.db.models import Upload as Upload
from vidq.errors import (
    BadRequest,
    ChecksumMismatch,
    Conflict,
    Gone,
    InvalidSource,
    NotFound,
    RequestTimeout,
    UploadTooLarge,
)
from vidq.jobs import blobs, upload_rows
from vidq.jobs.runtime import Runtime
from vidq.storage import Appender, Storage

CHECKSUM_ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
}
# Bytes gathered before each write to the store (a request's body comes in small pieces).
WRITE_BUFFER_BYTES = 1024 * 1024
# A writing request holds its lock this long past its last sign of life (the body's idle limit
# ends a request that stops sending well before).
LOCK_MARGIN_SECONDS = 10.0


@dataclass(frozen=True)
class Checksum:
    """A chunk's Upload-Checksum: the algorithm (`sha1`, `sha256`) and the digest it names."""

    algorithm: str
    digest: bytes


def _lock_until(runtime: Runtime) -> datetime:
    seconds = 2 * runtime.settings.body_idle_timeout_seconds + LOCK_MARGIN_SECONDS
    return utcnow() + timedelta(seconds=seconds)


def _expiry(runtime: Runtime, now: datetime) -> datetime:
    return now + timedelta(hours=runtime.settings.upload_expiry_hours)


async def create(
    runtime: Runtime,
    owner_id: str,
    *,
    length: int,
    filename: str | None,
    content_type: str | None,
    metadata: str | None,
) -> Upload:
    """A new, empty upload of `length` bytes (one of none is finished at once)."""
    if length > runtime.settings.max_upload_bytes:
        raise UploadTooLarge(
            f"Upload-Length {length} is larger than the limit of "
            f"{runtime.settings.max_upload_bytes} bytes."
        )
    now = utcnow()
    upload = await upload_rows.add(
        runtime.db,
        {
            "id": str(uuid.uuid4()),
            "owner_id": owner_id,
            "job_id": str(uuid.uuid4()),
            "length_bytes": length,
            "offset_bytes": 0,
            "filename": filename,
            "content_type": content_type,
            "upload_metadata": metadata,
            "store_state": {},
            "created_at": now,
            "updated_at": now,
            "expires_at": _expiry(runtime, now),
        },
    )
    if length == 0:
        appender = await _open(runtime.storage, upload)
        return await _finish(runtime, upload, appender, token=None, file_hash=hashlib.sha256())
    return upload


async def find(runtime: Runtime, owner_id: str, upload_id: str) -> Upload:
    """One of the owner's uploads: 404 if it has none by that id, 410 once it has expired."""
    upload = await upload_rows.get(runtime.db, upload_id, owner_id)
    if upload is None:
        raise NotFound(f"No upload {upload_id}.")
    if upload.expires_at <= utcnow():
        raise Gone(f"The upload {upload_id} has expired.")
    return upload


async def _lock(runtime: Runtime, owner_id: str, upload_id: str) -> tuple[Upload, str]:
    """Take the upload's write lock; 404, 410 or 409 (finished, or being written) if not."""
    token = str(uuid.uuid4())
    locked = await upload_rows.lock(
        runtime.db, upload_id, owner_id, token, now=utcnow(), until=_lock_until(runtime)
    )
    if locked is not None:
        return locked, token
    upload = await find(runtime, owner_id, upload_id)
    if upload.finished_at is not None:
        raise Conflict(
            f"The upload {upload_id} is finished: it holds all its {upload.length_bytes} bytes."
        )
    raise Conflict(f"Another request is writing to the upload {upload_id}; retry in a moment.")


async def _open(storage: Storage, upload: Upload) -> Appender:
    return await storage.open_appender(
        blobs.input_key(upload.job_id),
        blobs.upload_stage(upload.id),
        upload.store_state,
        upload.offset_bytes,
    )


async def append(
    runtime: Runtime,
    owner_id: str,
    upload_id: str,
    *,
    offset: int,
    chunks: AsyncIterator[bytes],
    checksum: Checksum | None = None,
    declared_bytes: int | None = None,
) -> Upload:
    """Add a request's body at `offset` (which must be the upload's); the upload after it.

    409 when `offset` is not where the upload stands, 413 past its length, 460 for a
    checksum that does not match: the chunk is then dropped whole. A body cut short
    (BadRequest, RequestTimeout) keeps what arrived, unless it carried a checksum.
    """
    upload, token = await _lock(runtime, owner_id, upload_id)
    db = runtime.db
    room = upload.length_bytes - offset
    refusal: Exception | None = None
    if upload.offset_bytes != offset:
        refusal = Conflict(
            f"Upload-Offset is {offset}, but the upload holds {upload.offset_bytes} bytes."
        )
    elif declared_bytes is not None and declared_bytes > room:
        refusal = UploadTooLarge(f"The chunk passes Upload-Length: {room} bytes are left.")
    try:
        if refusal is not None:
            raise refusal
        appender = await _open(runtime.storage, upload)
    except BaseException:
        await asyncio.shield(upload_rows.release(db, upload_id, token))
        raise
    checksum_hash = CHECKSUM_ALGORITHMS[checksum.algorithm]() if checksum else None
    file_hash = runtime.upload_digests.take(upload_id, offset)
    hashers = [h for h in (checksum_hash, file_hash) if h is not None]

    async def write(data: bytes) -> None:
        for hasher in hashers:
            hasher.update(data)
        await appender.write(data)

    received = 0
    buffer = bytearray()
    try:
        renew_at = time.monotonic() + runtime.settings.body_idle_timeout_seconds
        async for chunk in chunks:
            received += len(chunk)
            if received > room:
                raise UploadTooLarge(f"The chunk passes Upload-Length: {room} bytes are left.")
            buffer += chunk
            if len(buffer) >= WRITE_BUFFER_BYTES:
                await write(bytes(buffer))
                buffer.clear()
            if time.monotonic() > renew_at:
                if not await upload_rows.renew(db, upload_id, token, until=_lock_until(runtime)):
                    raise Conflict(f"The upload {upload_id} was ended while this request wrote.")
                renew_at = time.monotonic() + runtime.settings.body_idle_timeout_seconds
        await write(bytes(buffer))
        _verify(checksum, checksum_hash)
    except (BadRequest, RequestTimeout):
        # The body was cut short: keep what arrived, unless a checksum was to vouch for it.
        if checksum is None:
            await write(bytes(buffer))
            await _save(runtime, upload, appender, token, offset + received, file_hash)
        else:
            await _drop(db, appender, upload_id, token)
        raise
    except BaseException:
        await asyncio.shield(_drop(db, appender, upload_id, token))
        raise
    if offset + received == upload.length_bytes:
        return await _finish(runtime, upload, appender, token=token, file_hash=file_hash)
    return await _save(runtime, upload, appender, token, offset + received, file_hash)


def _verify(checksum: Checksum | None, hasher: Any | None) -> None:
    """460 unless the chunk's bytes hash to its Upload-Checksum."""
    if checksum is not None and hasher is not None and hasher.digest() != checksum.digest:
        raise ChecksumMismatch(
            f"The chunk's {checksum.algorithm} does not match its bytes; nothing of it was kept."
        )


async def _drop(db: Database, appender: Appender, upload_id: str, token: str) -> None:
    try:
        await appender.discard()
    finally:
        await upload_rows.release(db, upload_id, token)


async def _save(
    runtime: Runtime,
    upload: Upload,
    appender: Appender,
    token: str,
    new_offset: int,
    file_hash: Any | None,
) -> Upload:
    """Record what this request kept (and its running digest, if this process has it),
    and let go of the lock."""
    try:
        state = await appender.save()
    except BaseException:
        await asyncio.shield(_drop(runtime.db, appender, upload.id, token))
        raise
    now = utcnow()
    values = {
        "offset_bytes": new_offset,
        "store_state": state,
        "updated_at": now,
        "expires_at": _expiry(runtime, now),
    }
    if not await upload_rows.release(runtime.db, upload.id, token, **values):
        raise Conflict(f"The upload {upload.id} was ended while this request wrote to it.")
    if file_hash is not None:
        runtime.upload_digests.keep(upload.id, new_offset, file_hash)
    await runtime.storage.tidy_stage(blobs.upload_stage(upload.id), state)
    return upload_rows.updated(upload, values)


async def _finish(
    runtime: Runtime,
    upload: Upload,
    appender: Appender,
    *,
    token: str | None,
    file_hash: Any | None = None,
) -> Upload:
    """Publish the finished blob and record the upload finished, with its SHA-256: the
    running digest if this process has it, else the blob's, read back."""
    key = blobs.input_key(upload.job_id)
    await appender.finish()
    if file_hash is not None:
        digest = str(file_hash.hexdigest())
    else:
        digest = await _sha256(runtime.storage, key)
    now = utcnow()
    values = {
        "offset_bytes": upload.length_bytes,
        "store_state": {},
        "sha256": digest,
        "finished_at": now,
        "updated_at": now,
        "expires_at": _expiry(runtime, now),
    }
    if not await upload_rows.release(runtime.db, upload.id, token, **values):
        raise Conflict(f"The upload {upload.id} was ended while this request wrote to it.")
    return upload_rows.updated(upload, values)


async def _sha256(storage: Storage, key: str) -> str:
    """The SHA-256 of a stored blob, read back (hashed off the event loop)."""
    digest = hashlib.sha256()
    async for chunk in storage.read(key):
        await asyncio.to_thread(digest.update, chunk)
    return digest.hexdigest()


async def terminate(runtime: Runtime, owner_id: str, upload_id: str) -> None:
    """End an upload and remove its bytes (those a job has taken stay the job's)."""
    upload = await find(runtime, owner_id, upload_id)
    now = utcnow()
    db = runtime.db
    if await upload_rows.remove(db, upload_id, now=now, owner_id=owner_id, untaken=True):
        await _remove_bytes(runtime.storage, upload)
    elif not await upload_rows.remove(db, upload_id, now=now, owner_id=owner_id):
        raise Conflict(f"A request is writing to the upload {upload_id}; retry in a moment.")


async def _remove_bytes(storage: Storage, upload: Upload) -> None:
    """Remove every byte of an upload no job took: staged, and the blob once finished."""
    key = blobs.input_key(upload.job_id)
    await storage.abort_append(key, blobs.upload_stage(upload.id), upload.store_state)
    await storage.delete(key)


async def take(db: Database, owner_id: str, upload_id: str) -> Upload:
    """Mark a finished upload as used by the job being submitted; 422 invalid_source if it
    is unknown, another owner's, unfinished, expired or used already."""
    now = utcnow()
    taken = await upload_rows.take(db, upload_id, owner_id, now=now)
    if taken is not None:
        return taken
    upload = await upload_rows.get(db, upload_id, owner_id)
    if upload is None:
        raise InvalidSource(f"upload_id {upload_id!r} names no upload of yours.")
    if upload.expires_at <= now:
        raise InvalidSource(f"The upload {upload_id} has expired.")
    if upload.used_at is not None:
        raise InvalidSource(f"The upload {upload_id} was already turned into a job.")
    raise InvalidSource(
        f"The upload {upload_id} is not finished: it holds {upload.offset_bytes} of "
        f"{upload.length_bytes} bytes."
    )


async def give_back(db: Database, upload_id: str) -> None:
    """Undo `take` for a submission that failed: the upload may be used again."""
    await upload_rows.give_back(db, upload_id)


async def sweep_expired(runtime: Runtime) -> int:
    """Remove uploads past their expiry and, unless a job took them, their bytes; returns
    how many."""
    now = utcnow()
    removed = 0
    for upload in await upload_rows.expired(runtime.db, now=now):
        if await upload_rows.remove(runtime.db, upload.id, now=now, untaken=True, expired=True):
            await _remove_bytes(runtime.storage, upload)
            removed += 1
        elif await upload_rows.remove(runtime.db, upload.id, now=now, expired=True):
            removed += 1
    return removed

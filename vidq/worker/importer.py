"""A `source_url` job's input: fetched into storage, probed and checked like an upload.

The worker that claims a job whose input is not known yet runs `import_input` before
converting: the body streams from the URL (vidq.outbound.fetch: every address checked,
pinned, held to the size limit and the transfer limits) straight into the job's input
blob, hashed on the way, never held whole in memory. A failure that may pass (a network
error, a body cut short, HTTP 408/429/5xx) is tried again up to `import_retries` times,
2 s, 4 s … apart; then, or for any other failure, the job fails with `import_failed`.
What arrived is probed and checked against the job's options as an upload would be
(`unsupported_media`, `invalid_option`), and the input's fields are recorded on the job.

Nothing is kept of an import that fails or is stopped: the blob is written through a
`BlobWriter`, aborted on any error or cancellation. The caller cancels the task to stop
it (a cancel or delete of the job, or shutdown).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Protocol

from vidq import metrics
from vidq.config import Settings
from vidq.db.database import Database
from vidq.db.models import Job
from vidq.errors import InvalidOption, UnsupportedMedia
from vidq.jobs import blobs, queue
from vidq.jobs.capacity import check_capacity
from vidq.jobs.filenames import guess_content_type
from vidq.jobs.input_checks import check_against_input
from vidq.jobs.options import ResolvedOptions
from vidq.jobs.queue import Claim
from vidq.jobs.remux import decide_remux
from vidq.media.probe import probe
from vidq.outbound.fetch import FetchFailed, TransferLimits, open_body
from vidq.storage import Storage

log = logging.getLogger("vidq.worker")

WRITE_BUFFER_BYTES = 1024 * 1024
FIRST_RETRY_SECONDS = 2.0


class InputRefused(Exception):
    """The job's input could not be imported or used: the job fails with `code`."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class Fetched:
    """An input fetched into storage."""

    content_type: str
    size_bytes: int
    sha256: str


class ImportHost(Protocol):
    """What an import needs from its worker's process."""

    settings: Settings
    db: Database
    storage: Storage


async def import_unless_stopped(
    host: ImportHost, claim: Claim, scratch: Path, stop: asyncio.Event
) -> Job | None:
    """`import_input`, cancelled at once (keeping nothing) when `stop` is set; None then."""
    task = asyncio.create_task(import_input(host, claim, scratch), name=f"import-{claim.job.id}")
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
        await asyncio.wait({task})
    return None if task.cancelled() else task.result()


async def import_input(host: ImportHost, claim: Claim, scratch: Path) -> Job | None:
    """Fetch, probe, check and record the input of a claimed `source_url` job (`scratch`:
    the job's working directory); the job with its input known, or None if it is no longer
    this worker's. InputRefused otherwise."""
    job = claim.job
    assert job.source_url is not None
    key = blobs.input_key(job.id)
    try:
        fetched = await _fetch(host, job.source_url, key, job.input_filename)
    except InputRefused as exc:
        metrics.IMPORTS.labels(outcome="failed").inc()
        log.info("job %s: import failed: %s", job.id, exc.message)
        raise
    metrics.IMPORTS.labels(outcome="fetched").inc()
    options = ResolvedOptions(**job.options)
    try:
        async with host.storage.local_copy(key, scratch) as path:
            info = await probe(path, host.settings)
        check_against_input(options, info)
        options = decide_remux(options, info).options
        check_capacity(options, info, host.settings.ffmpeg_memory_bytes)
    except UnsupportedMedia as exc:
        raise InputRefused(
            "unsupported_media",
            f"The file fetched from {job.source_url} cannot be used: {exc.detail}",
        ) from exc
    except InvalidOption as exc:
        raise InputRefused("invalid_option", exc.detail) from exc
    recorded = await queue.record_input(
        host.db,
        claim,
        content_type=fetched.content_type,
        size_bytes=fetched.size_bytes,
        sha256=fetched.sha256,
        info=info.to_json(),
        options=options.model_dump(),
    )
    if not recorded:
        return None
    job.input_content_type = fetched.content_type
    job.input_size_bytes = fetched.size_bytes
    job.input_sha256 = fetched.sha256
    job.input_info = info.to_json()
    job.options = options.model_dump()
    return job


async def _fetch(host: ImportHost, url: str, key: str, filename: str) -> Fetched:
    """Fetch into the blob `key`, trying again after failures that may pass."""
    tries = host.settings.import_retries + 1
    for attempt in range(1, tries + 1):
        try:
            return await _fetch_once(host, url, key, filename)
        except FetchFailed as exc:
            if not exc.transient or attempt == tries:
                after = f" (after {attempt} tries)" if attempt > 1 else ""
                raise InputRefused(
                    "import_failed", f"Fetching {url} failed: {exc.message}{after}."
                ) from exc
            pause = FIRST_RETRY_SECONDS * 2 ** (attempt - 1)
            log.info("import from %s failed (%s); trying again in %g s", url, exc.message, pause)
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


async def _fetch_once(host: ImportHost, url: str, key: str, filename: str) -> Fetched:
    """One try: the body streamed into the blob `key`, committed only if all went well."""
    settings = host.settings
    limits = TransferLimits(
        max_bytes=settings.max_upload_bytes,
        stall_seconds=settings.import_stall_seconds,
        min_bytes_per_second=settings.import_min_bytes_per_second,
    )
    writer = host.storage.writer(key)
    try:
        async with open_body(url, settings.address_policy, limits) as body:
            digest = hashlib.sha256()
            size = 0
            buffer = bytearray()
            async for chunk in body.chunks():
                size += len(chunk)
                buffer += chunk
                if len(buffer) >= WRITE_BUFFER_BYTES:
                    digest.update(buffer)
                    await writer.write(bytes(buffer))
                    buffer.clear()
            digest.update(buffer)
            await writer.write(bytes(buffer))
            if size == 0:
                raise FetchFailed("the server sent an empty body")
            content_type = guess_content_type(body.content_type, filename)
        await writer.commit()
    except BaseException:
        await asyncio.shield(writer.abort())
        raise
    return Fetched(content_type=content_type, size_bytes=size, sha256=digest.hexdigest())

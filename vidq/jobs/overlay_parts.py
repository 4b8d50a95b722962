"""The overlay parts of a submission: a watermark image and a subtitles file, stored as the job's.

Each comes as a multipart part (`watermark`, `subtitles`; received whole, capped at
`VIDQ_MAX_OVERLAY_BYTES`, by the API) or as a finished resumable upload named by
`watermark_upload_id` / `subtitles_upload_id` (taken like an input upload: used once,
given back if the submission fails). `attach_parts` checks each one as the hostile input it
may be (the image by the probe, as one PNG/JPEG still; the subtitles parsed and rewritten
in Python, `vidq.media.subtitle_files`) and stores what passed under the job's own keys
(`blobs.part_key`), where delete, retention and the janitor find it with the input. A
submission that fails after that calls `undo`: nothing is left half-written.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vidq.errors import InvalidOption, InvalidSource, UploadTooLarge
from vidq.jobs import blobs, resumable
from vidq.jobs.options import ResolvedOptions
from vidq.jobs.overlays import ROLES
from vidq.jobs.runtime import Runtime
from vidq.media.info import MediaInfo
from vidq.media.subtitle_files import clean_subtitles
from vidq.media.watermark_image import check_watermark


@dataclass(frozen=True)
class ReceivedPart:
    """An overlay part of a multipart request, as it came (at most the size limit)."""

    role: str
    data: bytes
    filename: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class AttachedParts:
    """What `attach_parts` did, so that it can be undone or settled."""

    stored_keys: list[str] = field(default_factory=list)
    taken_uploads: list[str] = field(default_factory=list)
    upload_keys: list[str] = field(default_factory=list)  # the taken uploads' own blobs


def too_large(role: str, max_bytes: int) -> UploadTooLarge:
    """The answer to a part larger than the limit."""
    return UploadTooLarge(
        f"The `{role}` part is larger than the limit of {max_bytes} bytes.",
        errors=[{"field": role, "message": f"must be at most {max_bytes} bytes"}],
    )


def digest_fields(fields: Mapping[str, str], parts: Mapping[str, ReceivedPart]) -> dict[str, str]:
    """The fields an Idempotency-Key stands for, with each part's bytes as its digest."""
    return {**fields, **{role: f"sha256:{part.sha256}" for role, part in parts.items()}}


async def attach_parts(
    runtime: Runtime,
    owner_id: str,
    job_id: str,
    options: ResolvedOptions,
    info: MediaInfo | None,
    parts: Mapping[str, ReceivedPart],
    fields: Mapping[str, str],
) -> AttachedParts:
    """Check and store the overlay parts the options name (from `parts` or the uploads the
    fields name) under the job's keys; on any error nothing of them is kept."""
    attached = AttachedParts()
    wanted = [role for role in ROLES if getattr(options, role)]
    if wanted and info is not None and info.video is None:
        raise InvalidOption.field(wanted[0], "needs a video stream; the input has none")
    try:
        for role in wanted:
            if role in parts:
                data = parts[role].data
            else:
                upload_id = fields[f"{role}_upload_id"]
                data = await _take_upload(runtime, owner_id, role, upload_id, attached)
            stored = await _checked(runtime, role, data)
            key = blobs.part_key(job_id, role)
            attached.stored_keys.append(key)
            writer = runtime.storage.writer(key)
            try:
                await writer.write(stored)
                await writer.commit()
            except BaseException:
                await writer.abort()
                raise
    except BaseException:
        await undo(runtime, attached)
        raise
    return attached


async def _take_upload(
    runtime: Runtime, owner_id: str, role: str, upload_id: str, attached: AttachedParts
) -> bytes:
    """The bytes of a finished resumable upload, taken (used once) for this job."""
    try:
        upload = await resumable.take(runtime.db, owner_id, upload_id)
    except InvalidSource as exc:
        name = f"{role}_upload_id"
        raise InvalidSource(
            f"{name}: {exc.detail}", errors=[{"field": name, "message": exc.detail}]
        ) from None
    attached.taken_uploads.append(upload.id)
    limit = runtime.settings.max_overlay_bytes
    if upload.length_bytes > limit:
        raise too_large(role, limit)
    key = blobs.input_key(upload.job_id)
    data = bytearray()
    async for chunk in runtime.storage.read(key):
        data += chunk
        if len(data) > limit:
            raise too_large(role, limit)
    attached.upload_keys.append(key)
    return bytes(data)


async def _checked(runtime: Runtime, role: str, data: bytes) -> bytes:
    """The bytes to store for a part: the image as it came once the probe has passed it,
    the subtitles rewritten by vidq; UnsupportedMedia naming the part otherwise."""
    if role == "subtitles":
        text, _ = clean_subtitles(data)
        return text.encode("utf-8")
    settings = runtime.settings
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir, prefix="watermark-") as folder:
        path = Path(folder) / "watermark"
        path.write_bytes(data)
        await check_watermark(path, settings)
    return data


async def undo(runtime: Runtime, attached: AttachedParts) -> None:
    """Remove what `attach_parts` stored and give back the uploads it took."""
    await runtime.storage.delete_many(attached.stored_keys)
    for upload_id in attached.taken_uploads:
        await resumable.give_back(runtime.db, upload_id)


async def settle(runtime: Runtime, attached: AttachedParts) -> None:
    """Once the job is queued: remove the taken uploads' own blobs (the job has its copy)."""
    await runtime.storage.delete_many(attached.upload_keys)

"""Receiving an upload: streamed straight into storage as it arrives, capped while streaming.

Two forms (API.md): a multipart/form-data body with a `file` part and options as
fields, or a raw video/*, audio/* or application/octet-stream body with options in
the query (the third, JSON naming the input, is `vidq.api.json_request`). Neither is ever held whole in memory nor written twice. Field names and
values and the file's name are decoded with `vidq.jobs.strict.decode_text`, never
"repaired": one that is not UTF-8 is refused by the field check, which names it.

What uploads may hold is bounded here too: `UploadSlots` caps how many are received at
once (one more is `503 busy`), and a body that pauses longer than the idle limit ends
with `408 request_timeout`; either way nothing of it is kept.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, asynccontextmanager, contextmanager

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from vidq.api.early_answers import mark_body_read
from vidq.errors import (
    BadRequest,
    Busy,
    InvalidOption,
    RequestTimeout,
    UnsupportedContentType,
    UploadTooLarge,
    VidqError,
)
from vidq.jobs.blobs import PART_ROLES
from vidq.jobs.filenames import RAW_TYPES, clean_filename, guess_content_type
from vidq.jobs.overlay_parts import ReceivedPart, too_large
from vidq.jobs.strict import decode_text
from vidq.jobs.submission import NamedUpload, StoredInput
from vidq.storage import BlobWriter, Storage

WRITE_BUFFER_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 64
# Checks one form field (name, value) as it arrives; raises InvalidOption to refuse it.
FieldCheck = Callable[[str, str], None]


class UploadSlots:
    """How many uploads this process receives at once; one more is answered `503 busy`."""

    def __init__(self, limit: int, *, retry_after_seconds: int) -> None:
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds
        self.in_use = 0

    @contextmanager
    def take(self) -> Iterator[None]:
        """Hold one slot for the block; 503 busy at once if none is free."""
        if self.in_use >= self.limit:
            raise Busy(
                f"The server is receiving its limit of {self.limit} uploads; "
                f"retry in {self.retry_after_seconds} seconds.",
                retry_after=self.retry_after_seconds,
            )
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1


async def body_chunks(request: Request, idle_seconds: float) -> AsyncIterator[bytes]:
    """The body's chunks as they come; 408 if the client pauses longer than `idle_seconds`,
    400 if it goes away before the end."""
    async with aclosing(request.stream()) as stream:
        while True:
            try:
                async with asyncio.timeout(idle_seconds):
                    chunk = await anext(stream)
            except StopAsyncIteration:
                mark_body_read(request)
                return
            except ClientDisconnect as exc:
                raise BadRequest("The client disconnected before the upload finished.") from exc
            except TimeoutError as exc:
                raise RequestTimeout(
                    f"The upload paused for more than {idle_seconds:g} seconds; nothing was kept."
                ) from exc
            yield chunk


def convert_form(content_type: str, *, named_upload: bool = False) -> str:
    """`multipart`, `json` or `raw` for an acceptable Content-Type of POST /convert (any, or
    none, when the query names a resumable upload); 415 otherwise."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        return "multipart"
    if media_type == "application/json":
        return "json"
    if named_upload or media_type.startswith(RAW_TYPES) or media_type == "application/octet-stream":
        return "raw"
    raise UnsupportedContentType(
        f"Content-Type {media_type or '(none)'!r} is not accepted: send multipart/form-data "
        "with a `file` part, the video itself as video/*, audio/* or application/octet-stream, "
        "or application/json naming a source_url or upload_id."
    )


class _CappedBlob:
    """Buffers, hashes and writes the file's bytes, enforcing the size limit as they come."""

    def __init__(self, writer: BlobWriter, max_bytes: int) -> None:
        self.writer = writer
        self.max_bytes = max_bytes
        self.size = 0
        self.sha256 = hashlib.sha256()
        self._buffer = bytearray()

    async def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise UploadTooLarge(f"The upload is larger than the limit of {self.max_bytes} bytes.")
        self.sha256.update(data)
        self._buffer += data
        if len(self._buffer) >= WRITE_BUFFER_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self._buffer:
            chunk = bytes(self._buffer)
            self._buffer.clear()
            await self.writer.write(chunk)


@asynccontextmanager
async def _stored(storage: Storage, key: str, max_bytes: int) -> AsyncIterator[_CappedBlob]:
    """A capped blob for the body's bytes: committed if the block ends well, else removed."""
    writer = storage.writer(key)
    blob = _CappedBlob(writer, max_bytes)
    try:
        yield blob
        await blob.flush()
        await writer.commit()
    except BaseException:
        await writer.abort()
        raise


def check_declared_length(request: Request, max_bytes: int) -> None:
    """413 at once when Content-Length already says the body is too large."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes + MAX_FIELDS * MAX_FIELD_BYTES:
        raise UploadTooLarge(f"The upload is larger than the limit of {max_bytes} bytes.")


async def receive_raw(
    request: Request,
    storage: Storage,
    key: str,
    *,
    filename: str | None,
    max_bytes: int,
    idle_seconds: float,
) -> StoredInput:
    """Store a raw request body as the blob `key`."""
    check_declared_length(request, max_bytes)
    async with _stored(storage, key, max_bytes) as blob:
        async for chunk in body_chunks(request, idle_seconds):
            if chunk:
                await blob.add(chunk)
        if blob.size == 0:
            raise BadRequest("The request body is empty: send the video as the body.")
    name = clean_filename(filename)
    return StoredInput(
        filename=name,
        content_type=guess_content_type(request.headers.get("content-type"), name),
        size_bytes=blob.size,
        sha256=blob.sha256.hexdigest(),
        sent_filename=filename,
    )


class _MultipartReceiver:
    """Feeds python-multipart's push parser and routes each part's bytes."""

    def __init__(
        self, blob: _CappedBlob, check_field: FieldCheck | None, max_part_bytes: int
    ) -> None:
        self.blob = blob
        self.check_field = check_field
        self.max_part_bytes = max_part_bytes
        self.parts: dict[str, ReceivedPart] = {}  # overlay parts, by role (once complete)
        self._part_role = ""
        self._part_name: str | None = None
        self._part_data = bytearray()
        self.fields: dict[str, str] = {}
        self.new_fields: list[str] = []  # read, not yet checked
        self.field_errors: list[dict[str, str]] = []  # of the fields refused by check_field
        self.filename: str | None = None
        self.file_content_type: str | None = None
        self.seen_file = False
        self.pending_file: list[bytes] = []
        self.error: VidqError | None = None
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._part: str | None = None  # "file", a field name, or None (ignored)
        self._field_value = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
        }

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._part = None
        self._field_value = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        # Decoded so that bytes that are not UTF-8 are refused later, naming the field.
        name = decode_text(params.get(b"name", b""))
        if name == "file":
            if self.seen_file:
                self.error = BadRequest("Send exactly one `file` part.")
                return
            self.seen_file = True
            raw_name = params.get(b"filename")
            self.filename = decode_text(raw_name) if raw_name is not None else None
            ctype = self._headers.get(b"content-type")
            self.file_content_type = ctype.decode("latin-1") if ctype else None
            self._part = "file"
        elif name in PART_ROLES:  # an overlay's file (whether or not it has a filename)
            if name in self.parts or name == self._part_role:
                self.error = BadRequest(f"Send at most one `{name}` part.")
                return
            raw_name = params.get(b"filename")
            self._part_name = decode_text(raw_name) if raw_name is not None else None
            self._part_role, self._part_data = name, bytearray()
            self._part = "overlay"
        elif name:
            if len(self.fields) >= MAX_FIELDS:
                self.error = BadRequest(f"Too many form fields (at most {MAX_FIELDS}).")
                return
            self._part = name

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file":
            self.pending_file.append(data[start:end])
        elif self._part == "overlay":
            self._part_data += data[start:end]
            if len(self._part_data) > self.max_part_bytes:
                self.error = too_large(self._part_role, self.max_part_bytes)
                self._part = None
        elif self._part is not None:
            self._field_value += data[start:end]
            if len(self._field_value) > MAX_FIELD_BYTES:
                self.error = BadRequest(
                    f"Form field {self._part!r} is longer than {MAX_FIELD_BYTES} bytes."
                )
                self._part = None

    def _on_part_end(self) -> None:
        if self._part == "overlay":
            role = self._part_role
            self.parts[role] = ReceivedPart(role, bytes(self._part_data), self._part_name)
            self._part_data = bytearray()
        elif self._part not in (None, "file"):
            assert self._part is not None
            if self._part in self.fields:
                self.error = BadRequest(f"Form field {self._part!r} is given twice.")
            self.fields[self._part] = decode_text(bytes(self._field_value))
            self.new_fields.append(self._part)
        self._part = None

    def check_new_fields(self) -> None:
        """Check each field read since the last call alone (`check_field`); once the file
        has begun, InvalidOption naming every field refused so far. So a bad field before
        the file ends the upload as the file starts, none of it read; a form without a file
        is still `400` first. The whole form is checked again once it has arrived."""
        names, self.new_fields = self.new_fields, []
        if self.check_field is not None:
            for name in names:
                try:
                    self.check_field(name, self.fields[name])
                except InvalidOption as exc:
                    self.field_errors.extend(exc.errors)
        if self.field_errors and self.seen_file:
            raise InvalidOption(errors=self.field_errors)

    async def drain(self) -> None:
        """Move the file bytes parsed so far into storage."""
        if self.error is not None:
            raise self.error
        pending, self.pending_file = self.pending_file, []
        for data in pending:
            await self.blob.add(data)


class _NamesAnUpload(Exception):
    """A form with an `upload_id` field and no file: nothing of it is stored."""

    def __init__(self, named: NamedUpload) -> None:
        self.named = named


async def receive_multipart(
    request: Request,
    storage: Storage,
    key: str,
    *,
    max_bytes: int,
    idle_seconds: float,
    check_field: FieldCheck | None = None,
    max_part_bytes: int = 4 * 1024 * 1024,
) -> StoredInput | NamedUpload:
    """Store the `file` part of a multipart body as the blob `key`; return its fields too.
    Each field is given to `check_field` as soon as it has arrived: one it refuses ends the
    upload as the file begins (`422`, nothing kept), before any of the file is read. A form
    with an `upload_id` field instead of a file names a finished resumable upload. The
    overlay parts (`watermark`, `subtitles`) are read whole, each at most `max_part_bytes`."""
    check_declared_length(request, max_bytes + len(PART_ROLES) * max_part_bytes)
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("The multipart Content-Type has no boundary.")
    try:
        return await _receive_form(
            request, storage, key, boundary, max_bytes, idle_seconds, check_field, max_part_bytes
        )
    except _NamesAnUpload as exc:
        return exc.named


async def _receive_form(
    request: Request,
    storage: Storage,
    key: str,
    boundary: bytes,
    max_bytes: int,
    idle_seconds: float,
    check_field: FieldCheck | None,
    max_part_bytes: int,
) -> StoredInput:
    async with _stored(storage, key, max_bytes) as blob:
        receiver = _MultipartReceiver(blob, check_field, max_part_bytes)
        parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
        try:
            async for chunk in body_chunks(request, idle_seconds):
                if chunk:
                    parser.write(chunk)
                    receiver.check_new_fields()
                    await receiver.drain()
            parser.finalize()
        except MultipartParseError as exc:
            raise BadRequest(f"The multipart body is malformed: {exc}") from exc
        await receiver.drain()
        if "upload_id" in receiver.fields:
            if receiver.seen_file:
                raise BadRequest("Send either a `file` part or an `upload_id` field, not both.")
            upload_id = receiver.fields.pop("upload_id")
            raise _NamesAnUpload(NamedUpload(upload_id, receiver.fields, receiver.parts))
        if not receiver.seen_file:
            raise BadRequest(
                "The form has no `file` part: send the video as a part named `file` (or name a"
                " finished resumable upload in an `upload_id` field)."
            )
        if blob.size == 0:
            raise BadRequest("The `file` part is empty.")
    name = clean_filename(receiver.filename)
    return StoredInput(
        filename=name,
        content_type=guess_content_type(receiver.file_content_type, name),
        size_bytes=blob.size,
        sha256=blob.sha256.hexdigest(),
        fields=receiver.fields,
        sent_filename=receiver.filename,
        parts=receiver.parts,
    )

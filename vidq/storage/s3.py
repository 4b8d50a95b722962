"""Blobs in an S3-compatible bucket (AWS S3, MinIO, R2, …), through boto3 in threads.

Uploads go up as a multipart upload in parts of `PART_BYTES`, so memory stays bounded
and nothing is visible under the key until `commit()` completes it; a blob that never
fills one part is sent as a single PutObject. boto3 is synchronous and its clients are
thread-safe, so every call runs in `asyncio.to_thread`.

A call that fails with a transient fault (a connection refused, reset or cut, a timeout,
a 5xx or SlowDown: `vidq.faults`) is made again, beyond botocore's own few retries, for up
to `retry_seconds`, then raises StorageUnavailable. A download cut off midway resumes
where it stopped; a listing resumes at its page.

A blob appended to over many requests (a resumable upload) is a multipart upload kept
open between them (`vidq.storage.s3_append`).
"""

from __future__ import annotations

import asyncio
import errno
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from vidq.errors import StorageFull
from vidq.faults import retry_transient
from vidq.storage.base import Appender, check_key

T = TypeVar("T")

PART_BYTES = 8 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
# DeleteObjects takes at most this many keys a request.
DELETE_BATCH = 1000
TRANSFER = TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES)

# Error codes S3-compatible stores answer when they cannot take more bytes.
_FULL_CODES = frozenset(
    {
        "EntityTooLarge",
        "QuotaExceeded",
        "InsufficientStorage",
        "StorageFull",
        "XMinioStorageFull",
        "XMinioAdminBucketQuotaExceeded",
    }
)
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _is_full(exc: BaseException | None) -> bool:
    """Whether the store said it cannot take more bytes (also when boto3 wrapped its answer)."""
    while exc is not None:
        if isinstance(exc, ClientError) and (
            _error_code(exc) in _FULL_CODES or _status(exc) == 507
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _is_missing(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and (
        _error_code(exc) in _MISSING_CODES or _status(exc) == 404
    )


async def _call(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """One blocking boto3 call in a thread, made once."""
    return await asyncio.to_thread(function, *args, **kwargs)


class S3Writer:
    """One blob on its way up: buffered to a part, then a multipart upload (or one put)."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        self._call = storage.call
        self._client = storage.client
        self._bucket = storage.bucket
        self._key = key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._closed = False
        self.bytes_written = 0

    async def write(self, chunk: bytes) -> None:
        if self._closed:
            raise RuntimeError("write to a closed blob writer")
        self._buffer += chunk
        self.bytes_written += len(chunk)
        while len(self._buffer) >= PART_BYTES:
            part = bytes(self._buffer[:PART_BYTES])
            del self._buffer[:PART_BYTES]
            await self._guarded(self._upload_part(part))

    async def commit(self) -> None:
        if self._closed:
            raise RuntimeError("commit of a closed blob writer")
        if self._upload_id is None:
            body = bytes(self._buffer)
            self._buffer.clear()
            await self._guarded(
                self._call(self._client.put_object, Bucket=self._bucket, Key=self._key, Body=body)
            )
        else:
            if self._buffer:
                part = bytes(self._buffer)
                self._buffer.clear()
                await self._guarded(self._upload_part(part))
            await self._guarded(
                self._call(
                    self._client.complete_multipart_upload,
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
            )
        self._closed = True

    async def abort(self) -> None:
        self._closed = True
        self._buffer.clear()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            await _abort_multipart(self._client, self._bucket, self._key, upload_id)

    async def _upload_part(self, data: bytes) -> None:
        if self._upload_id is None:
            created = await self._call(
                self._client.create_multipart_upload, Bucket=self._bucket, Key=self._key
            )
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        answer = await self._call(
            self._client.upload_part,
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def _guarded(self, step: Awaitable[object]) -> None:
        """Run one step; on failure leave nothing behind, and say so if the store is full."""
        try:
            await step
        except BaseException as exc:
            await asyncio.shield(self.abort())
            if _is_full(exc):
                raise StorageFull() from exc
            raise


async def _abort_multipart(client: Any, bucket: str, name: str, upload_id: str) -> None:
    try:
        await _call(client.abort_multipart_upload, Bucket=bucket, Key=name, UploadId=upload_id)
    except ClientError as exc:
        if not _is_missing(exc) and _error_code(exc) != "NoSuchUpload":
            raise


class S3Storage:
    """A bucket, or a prefix of one, addressed by the same relative keys as LocalStorage."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
        retry_seconds: float = 0.0,
    ) -> None:
        if not bucket:
            raise ValueError("an s3:// storage URL needs a bucket: s3://bucket[/prefix]")
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        if client is None:
            options: dict[str, Any] = {
                "retries": {"mode": "standard", "max_attempts": 5},
                "max_pool_connections": 32,
                "connect_timeout": 10,
            }
            if endpoint_url:
                # Self-hosted stores (MinIO, …) rarely have a DNS name per bucket, and some
                # reject the newer default checksums: address by path, checksum when required.
                options["s3"] = {"addressing_style": "path"}
                options["request_checksum_calculation"] = "when_required"
                options["response_checksum_validation"] = "when_required"
            session = boto3.session.Session()
            client = session.client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=Config(**options)
            )
        self.client = client
        self.retry_seconds = retry_seconds

    async def call(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """One boto3 call in a thread, made again while it meets a transient fault, for up to
        `retry_seconds`; then StorageUnavailable. The call must be safe to repeat."""
        return await retry_transient(
            lambda: _call(function, *args, **kwargs),
            budget_seconds=self.retry_seconds,
            what="the bucket",
        )

    def _object(self, key: str) -> str:
        check_key(key)
        return self.prefix + key

    def writer(self, key: str) -> S3Writer:
        return S3Writer(self, self._object(key))

    @asynccontextmanager
    async def local_copy(self, key: str, scratch_dir: Path) -> AsyncIterator[Path]:
        name = self._object(key)
        scratch_dir.mkdir(parents=True, exist_ok=True)
        path = scratch_dir / f"download-{uuid.uuid4().hex}"
        try:
            try:
                await self.call(
                    self.client.download_file, self.bucket, name, str(path), Config=TRANSFER
                )
            except ClientError as exc:
                if _is_missing(exc):
                    raise FileNotFoundError(key) from exc
                raise
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise StorageFull("No space left for a working copy of the file.") from exc
                raise
            yield path
        finally:
            path.unlink(missing_ok=True)

    async def put_file(self, key: str, path: Path) -> None:
        name = self._object(key)
        try:
            await self.call(self.client.upload_file, str(path), self.bucket, name, Config=TRANSFER)
        except Exception as exc:
            if _is_full(exc):
                raise StorageFull() from exc
            raise
        os.unlink(path)

    def local_path(self, key: str) -> Path | None:
        return None

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        name = self._object(key)
        position = start
        body: Any = None

        async def next_chunk() -> bytes:
            """The next chunk from `position`, opening (again) the object's stream if need be."""
            nonlocal body
            if body is None:
                request: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
                if position > 0 or end is not None:
                    request["Range"] = f"bytes={position}-{'' if end is None else end}"
                try:
                    body = (await _call(self.client.get_object, **request))["Body"]
                except ClientError as exc:
                    if _is_missing(exc):
                        raise FileNotFoundError(key) from exc
                    raise
            try:
                return await _call(body.read, CHUNK_BYTES)
            except BaseException:
                # Cut off midway: the next try opens the stream again where it stopped.
                body.close()
                body = None
                raise

        try:
            while end is None or position <= end:
                chunk = await retry_transient(
                    next_chunk, budget_seconds=self.retry_seconds, what="the bucket"
                )
                if not chunk:
                    break
                position += len(chunk)
                yield chunk
        finally:
            if body is not None:
                body.close()

    async def size(self, key: str) -> int | None:
        try:
            answer = await self.call(
                self.client.head_object, Bucket=self.bucket, Key=self._object(key)
            )
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        return int(answer["ContentLength"])

    async def delete(self, key: str) -> None:
        try:
            await self.call(self.client.delete_object, Bucket=self.bucket, Key=self._object(key))
        except ClientError as exc:
            if not _is_missing(exc):
                raise

    async def delete_many(self, keys: Sequence[str]) -> None:
        names = [self._object(key) for key in keys]
        for start in range(0, len(names), DELETE_BATCH):
            batch = [{"Key": name} for name in names[start : start + DELETE_BATCH]]
            answer = await self.call(
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": batch, "Quiet": True},
            )
            failed = [e for e in answer.get("Errors", []) if e.get("Code") not in _MISSING_CODES]
            if failed:
                raise OSError(
                    f"the bucket kept {len(failed)} of {len(batch)} objects: {failed[0].get('Code')}"
                )

    async def presigned_url(
        self,
        key: str,
        expires_seconds: int,
        *,
        content_type: str | None = None,
        disposition: str | None = None,
    ) -> str | None:
        params = {"Bucket": self.bucket, "Key": self._object(key)}
        if content_type:
            params["ResponseContentType"] = content_type
        if disposition:
            params["ResponseContentDisposition"] = disposition
        # Signing is local, but the first use may have to find the credentials (a role).
        url = await _call(
            self.client.generate_presigned_url,
            "get_object",
            Params=params,
            ExpiresIn=expires_seconds,
        )
        return str(url)

    async def keys(self, prefix: str) -> AsyncIterator[tuple[str, float]]:
        prefix = prefix.strip("/")
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": f"{self.prefix}{prefix}/" if prefix else self.prefix,
        }
        while True:
            page = await self.call(self.client.list_objects_v2, **request)
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :], item["LastModified"].timestamp()
            if not page.get("IsTruncated"):
                return
            request["ContinuationToken"] = page["NextContinuationToken"]

    async def ping(self) -> None:
        # Made once: /readyz says how the bucket is now.
        await _call(self.client.head_bucket, Bucket=self.bucket)

    async def open_appender(
        self, key: str, stage: str, state: Mapping[str, Any], size: int
    ) -> Appender:
        from vidq.storage.s3_append import S3Appender  # it builds on this module

        check_key(stage)
        appender = S3Appender(self, key, stage, state)
        tail_bytes = int(state.get("tail_bytes", 0))
        if appender._parts_bytes + tail_bytes != size:
            raise OSError(errno.EIO, f"the recorded parts do not add up to {size} bytes")
        await appender.load_tail(tail_bytes)
        return appender

    async def tidy_stage(self, stage: str, state: Mapping[str, Any]) -> None:
        kept = state.get("tail")
        stale = [key async for key, _ in self.keys(stage) if key != kept]
        await self.delete_many(stale)

    async def abort_append(self, key: str, stage: str, state: Mapping[str, Any]) -> None:
        upload_id = state.get("multipart")
        if upload_id:
            await _abort_multipart(self.client, self.bucket, self._object(key), str(upload_id))
        await self.tidy_stage(stage, {})

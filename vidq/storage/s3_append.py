"""A blob appended to over many requests (a resumable upload) in an S3-compatible bucket.

It is a multipart upload kept open between the requests: each request sends the parts it
fills, and the short tail after the last whole part (a part must be at least 5 MiB, but
the last) is staged as an object of its own under the upload's stage prefix, read back by
the next request, whichever API process receives it. Parts a request sent but did not
get recorded are sent again by the next one under the same numbers, so the multipart
upload only ever completes with the recorded ones.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vidq.errors import StorageFull
from vidq.storage.base import AppendState
from vidq.storage.s3 import PART_BYTES, _abort_multipart, _is_full

if TYPE_CHECKING:
    from vidq.storage.s3 import S3Storage


class S3Appender:
    """Appends one request's bytes to a multipart upload kept open across requests.

    `state` holds the multipart upload's id, the parts sent (`[number, etag, bytes]`) and
    the staged tail (`tail`, `tail_bytes`): the bytes after the last whole part.
    """

    def __init__(self, storage: S3Storage, key: str, stage: str, state: Mapping[str, Any]) -> None:
        self._storage = storage
        self._client = storage.client
        self._bucket = storage.bucket
        self._key = storage._object(key)
        self._stage = stage
        self._upload_id: str | None = state.get("multipart")
        self._created_here = False
        self._parts: list[list[Any]] = [list(part) for part in state.get("parts", [])]
        self._tail: str | None = state.get("tail")
        self._buffer = bytearray()

    async def load_tail(self, tail_bytes: int) -> None:
        """Read the staged tail back: the start of this request's buffer."""
        if self._tail is not None and tail_bytes > 0:
            async for chunk in self._storage.read(self._tail, 0, tail_bytes - 1):
                self._buffer += chunk
        if len(self._buffer) != tail_bytes:
            raise OSError(
                errno.EIO, f"the staged tail holds {len(self._buffer)} bytes, not {tail_bytes}"
            )

    @property
    def _parts_bytes(self) -> int:
        return sum(int(size) for _, _, size in self._parts)

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= PART_BYTES:
            part = bytes(self._buffer[:PART_BYTES])
            del self._buffer[:PART_BYTES]
            await self._upload_part(part)

    async def _upload_part(self, data: bytes) -> None:
        try:
            if self._upload_id is None:
                created = await self._storage.call(
                    self._client.create_multipart_upload, Bucket=self._bucket, Key=self._key
                )
                self._upload_id = str(created["UploadId"])
                self._created_here = True
            number = len(self._parts) + 1
            answer = await self._storage.call(
                self._client.upload_part,
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
            )
        except Exception as exc:
            if _is_full(exc):
                raise StorageFull() from exc
            raise
        self._parts.append([number, answer["ETag"], len(data)])

    async def save(self) -> AppendState:
        tail: str | None = None
        if self._buffer:
            # Named by where it starts: a request that adds no whole part rewrites the same
            # object, longer; the recorded `tail_bytes` says how much of it is the upload's.
            tail = f"{self._stage}/tail-{self._parts_bytes}"
            writer = self._storage.writer(tail)
            await writer.write(bytes(self._buffer))
            await writer.commit()
        return {
            "multipart": self._upload_id,
            "parts": self._parts,
            "tail": tail,
            "tail_bytes": len(self._buffer),
        }

    async def discard(self) -> None:
        self._buffer.clear()
        if self._created_here and self._upload_id is not None:
            # Parts sent under a recorded upload are sent again (same numbers) next time;
            # an upload this request started is not recorded anywhere, so it goes now.
            await _abort_multipart(self._client, self._bucket, self._key, self._upload_id)

    async def finish(self) -> None:
        try:
            if self._upload_id is None:
                await self._storage.call(
                    self._client.put_object,
                    Bucket=self._bucket,
                    Key=self._key,
                    Body=bytes(self._buffer),
                )
            else:
                if self._buffer:
                    await self._upload_part(bytes(self._buffer))
                await self._storage.call(
                    self._client.complete_multipart_upload,
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": n, "ETag": etag} for n, etag, _ in self._parts]
                    },
                )
        except Exception as exc:
            if _is_full(exc):
                raise StorageFull() from exc
            raise
        self._buffer.clear()
        await self._storage.tidy_stage(self._stage, {})

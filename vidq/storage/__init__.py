"""Blob storage behind one interface: a local directory, or an S3-compatible bucket."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from vidq.storage.base import Appender, AppendState, BlobWriter, Storage
from vidq.storage.local import LocalStorage

__all__ = ["AppendState", "Appender", "BlobWriter", "LocalStorage", "Storage", "open_storage"]


def open_storage(
    url: str,
    *,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
    retry_seconds: float = 0.0,
) -> Storage:
    """The store named by a storage URL: `file:///path` or `s3://bucket[/prefix]`; a
    bucket's calls meeting a transient fault are made again for up to `retry_seconds`."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(Path(url2pathname(parsed.path)))
    if parsed.scheme == "s3":
        from vidq.storage.s3 import S3Storage  # boto3 is loaded only when a bucket is used

        return S3Storage(
            parsed.netloc,
            parsed.path,
            endpoint_url=s3_endpoint_url,
            region=s3_region,
            retry_seconds=retry_seconds,
        )
    raise ValueError(
        f"unsupported storage URL scheme {parsed.scheme!r}: use file:///path or s3://bucket/prefix"
    )

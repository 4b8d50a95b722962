"""Blob storage behind one interface: a local directory, or an S3-compatible bucket."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from vidq.storage.base import BlobWriter, Storage
from vidq.storage.local import LocalStorage

__all__ = ["BlobWriter", "LocalStorage", "Storage", "open_storage"]


def open_storage(url: str) -> Storage:
    """The store named by a storage URL (`file:///path`)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(Path(url2pathname(parsed.path)))
    raise ValueError(f"unsupported storage URL scheme {parsed.scheme!r}: use file://")

"""The files of a completed job (API.md "Files of an output"): what `result.files` lists,
and how each one is served.

A completed job's row records every file its output made in `result["files"]`, each
`{"path", "role", "size_bytes", "content_type"}`; `blobs.file_key` says where each is
stored. Jobs completed before outputs had several files have no list: theirs is the one
main file their result describes.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from vidq.db.models import Job
from vidq.jobs.blobs import MAIN_ROLE
from vidq.media.package import CONTENT_TYPES

Role = Literal[
    "main",
    "manifest",
    "playlist",
    "init",
    "segment",
    "poster",
    "storyboard",
    "storyboard_vtt",
    "subtitles",
]

# Files a client may fetch straight from a bucket (a presigned redirect). Manifests,
# playlists and text tracks are always answered by vidq: they refer to other files by
# relative paths, which must resolve under the same signed prefix, not in the bucket.
REDIRECTABLE_ROLES = frozenset({"main", "init", "segment", "poster", "storyboard"})

_DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class OutputFile:
    """One file of a job's output, as `result.files` lists it."""

    path: str
    role: str
    size_bytes: int
    content_type: str

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> OutputFile:
        return cls(
            path=str(item["path"]),
            role=str(item["role"]),
            size_bytes=int(item["size_bytes"]),
            content_type=str(item.get("content_type") or _DEFAULT_CONTENT_TYPE),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def output_files(job: Job) -> list[OutputFile]:
    """Every file of a completed job's output; [] for a job without a result."""
    result = job.result or {}
    listed = result.get("files")
    if isinstance(listed, list):
        return [OutputFile.from_json(item) for item in listed]
    if "filename" not in result:
        return []
    # Completed before outputs had several files: the one main file.
    return [
        OutputFile(
            path=str(result["filename"]),
            role=MAIN_ROLE,
            size_bytes=int(result.get("size_bytes") or 0),
            content_type=str(result.get("content_type") or _DEFAULT_CONTENT_TYPE),
        )
    ]


def find_file(job: Job, path: str) -> OutputFile | None:
    """The file of the job's output at `path` (exactly as listed), if there is one."""
    return next((file for file in output_files(job) if file.path == path), None)


def served_content_type(file: OutputFile) -> str:
    """The Content-Type a file is served with: the main file's recorded type, else the one a
    player needs for its extension (fMP4 segments are `video/mp4`, audio ones too), else
    what the listing recorded."""
    if file.role == MAIN_ROLE:
        return file.content_type
    extension = posixpath.splitext(file.path)[1].lower()
    return CONTENT_TYPES.get(extension, file.content_type)

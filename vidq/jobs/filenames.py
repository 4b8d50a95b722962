"""The name and media type an input is kept under, from what the client said about it.

A filename is data, never a path: whatever a client sends (a multipart filename, the
`filename` query parameter, a tus upload's `filename` metadata, the last segment of a
`source_url`) is cut to its last segment, stripped of control characters and bounded.
"""

from __future__ import annotations

import mimetypes
import re
from urllib.parse import unquote, urlsplit

DEFAULT_FILENAME = "upload"
RAW_TYPES = ("video/", "audio/")
# type "/" subtype, each an RFC 9110 token: a declared type that is anything else is ignored.
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", re.ASCII)


def clean_filename(name: str | None, default: str = DEFAULT_FILENAME) -> str:
    """A filename kept as data: no directories, no control characters, bounded length."""
    if not name:
        return default
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if name in ("", ".", ".."):
        return default
    return name[:255]


def filename_from_url(url: str) -> str:
    """The name a URL's path ends with (percent-decoded and cleaned), else `download`."""
    path = urlsplit(url).path
    name = unquote(path.rsplit("/", 1)[-1], errors="replace")
    return clean_filename(name, default="download")


def guess_content_type(declared: str | None, filename: str) -> str:
    """The declared media type if it says video/audio, else one guessed from the name."""
    if declared:
        media_type = declared.split(";", 1)[0].strip().lower()
        if media_type.startswith(RAW_TYPES) and _MEDIA_TYPE.fullmatch(media_type):
            return media_type
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"

"""HTTP details the routes share: conditional requests, byte ranges, download names."""

from __future__ import annotations

from urllib.parse import quote

from vidq.errors import RangeNotSatisfiable


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (so the answer is 304)."""
    if not if_none_match:
        return False
    return etag in (tag.strip() for tag in if_none_match.split(","))


def single_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a one-range `Range` header asks for; None: the whole file.

    Several ranges, other units and malformed headers are ignored (RFC 9110 14.2), so the
    answer is the whole file; a range wholly past the end is 416.
    """
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not dash or not (first or last):
        return None
    if not all(part.isascii() and part.isdigit() for part in (first, last) if part):
        return None
    if first:
        start, end = _offset(first), min(_offset(last) if last else size - 1, size - 1)
        if last and _offset(last) < start:
            return None
    else:  # the last N bytes
        start, end = max(0, size - _offset(last)), size - 1
    if start > end:
        raise RangeNotSatisfiable(
            f"The range {header!r} is outside the file's {size} bytes.", size=size
        )
    return start, end


def _offset(digits: str) -> int:
    """A byte offset from a Range header; any number past 2**63 counts as 2**63 (int()
    refuses strings of more than 4300 digits, and no file is that large anyway)."""
    return int(digits) if len(digits) <= 18 else 2**63


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII `filename` and, when needed, RFC 6266 `filename*`."""
    safe = "".join(ch for ch in filename if ch.isprintable() and ch not in '/\\"')
    fallback = safe.encode("ascii", "replace").decode().replace("?", "_") or "download"
    header = f'attachment; filename="{fallback}"'
    if fallback != safe:
        header += f"; filename*=UTF-8''{quote(safe, safe='')}"
    return header

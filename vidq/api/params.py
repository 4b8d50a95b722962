"""Path and query parameters, read strictly (the grammars are vidq.jobs.strict's).

Starlette decodes a query's bytes that are not UTF-8 into U+FFFD, so the options of a
raw upload are read here instead: its query keeps those bytes for the field check to
refuse, naming the field.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from vidq.jobs.strict import decode_text


def query_items(query_string: bytes) -> list[tuple[str, str]]:
    """A raw query's name/value pairs in order, decoded with `decode_text` (not repaired)."""
    items: list[tuple[str, str]] = []
    for part in query_string.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        items.append((_query_text(name), _query_text(value)))
    return items


def _query_text(data: bytes) -> str:
    return decode_text(unquote_to_bytes(data.replace(b"+", b" ")))

"""Server-Sent Events: the `text/event-stream` format, read line by line (WHATWG HTML §9.2)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: its name (`message` unless the stream named it), data and id."""

    event: str
    data: str
    id: str | None = None
    retry_ms: int | None = None


def parse_events(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """The events in a stream's lines (without their line breaks); comments are skipped,
    an event is dispatched at the blank line that ends it, and one left unfinished when the
    stream ends is dropped, as the standard says."""
    event, last_id, retry_ms = "", None, None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data), last_id, retry_ms)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id" and "\0" not in value:
            last_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            retry_ms = int(value)

"""What live feeds pass around: a change of a job, an event for clients, a client's stream.

`vidq.jobs.feeds` makes the events and hands them to each `Subscription`; the API's event
streams read them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from vidq.jobs.states import FINISHED

log = logging.getLogger("vidq.feeds")

# Events one client may have waiting; a client that falls this far behind is let go (its
# stream ends, and a reconnecting EventSource starts again from the job as it is now).
MAX_PENDING_EVENTS = 256


@dataclass(frozen=True)
class JobChange:
    """Something clients see of a job changed. `owner_id` lets feeds of the owner's list
    notice a job they do not follow yet (a new one, a finished one deleted); `queue_moved`
    says that the places of queued jobs may have changed (a job left or re-entered the queue)."""

    job_id: str
    owner_id: str | None = None
    queue_moved: bool = False


@dataclass(frozen=True)
class FeedEvent:
    """What a client is sent: the Job as it now is (`job`), or that it was deleted."""

    kind: Literal["job", "deleted"]
    job_id: str
    document: dict[str, Any] | None = None
    etag: str | None = None

    @property
    def finished(self) -> bool:
        return self.kind == "deleted" or (
            self.document is not None and self.document["status"] in FINISHED
        )


class Subscription:
    """One client's stream of events, in order. It ends when its feed says so (a job's
    stream after the job's end), when the client falls behind, or when it is closed."""

    def __init__(self, on_close: Callable[[Subscription], None]) -> None:
        self._queue: asyncio.Queue[FeedEvent | None] = asyncio.Queue()
        self._on_close = on_close
        self.closed = False

    def deliver(self, event: FeedEvent) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= MAX_PENDING_EVENTS:
            log.info(
                "a live-update client fell %d events behind; ending its stream", MAX_PENDING_EVENTS
            )
            self.end()
            return
        self._queue.put_nowait(event)

    @property
    def empty(self) -> bool:
        """Whether no event is waiting to be read."""
        return self._queue.empty()

    def end(self) -> None:
        """No more events: the stream ends once those queued are read."""
        if not self.closed:
            self._queue.put_nowait(None)
            self.close()

    def close(self) -> None:
        """Stop following (the client left or the stream ended); idempotent."""
        if not self.closed:
            self.closed = True
            self._on_close(self)

    async def events(self) -> AsyncIterator[FeedEvent]:
        """The events as they come, until the stream ends."""
        try:
            while (event := await self._queue.get()) is not None:
                yield event
        finally:
            self.close()

"""What an idle or slow client can hold of this process: open connections, and time.

Each connection is an open file. uvicorn's own `limit_concurrency` looks only once a
request's headers are complete, and answers in plain text, so a client that opens sockets
and sends nothing could hold every file this process may open. `GuardedHttpToolsProtocol`
is uvicorn's httptools protocol with three bounds added:

- **A cap on open connections**, checked as each one is accepted. At the cap, the
  connection that has waited longest for request headers (an idle keep-alive, or a client
  that never finished its headers) is closed to make room; if every connection is busy
  with a request, the new one is answered `503 busy` (problem+json, `Retry-After`) and
  closed at once, without waiting for its headers.
- **A time limit on request headers**: from the moment a connection waits for a request
  (it opened, or its last answer was sent) until that request's headers are complete. When
  it passes the connection is closed, after a `408` if part of a request had come.
- **A time limit on a stalled reader**: a client that reads none of an answer for
  `body_idle_timeout_seconds` (the send buffer is full and does not shrink) is cut off.

A stalled upload body is bounded where the body is read (`vidq.api.uploads`), so that
the client can be told `408`. Only the httptools protocol is guarded: vidq depends on
httptools, so uvicorn never picks h11 for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import resource
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from vidq import metrics
from vidq.api.problems import MEDIA_TYPE, problem_document
from vidq.config import Settings
from vidq.errors import Busy, RequestTimeout, VidqError

log = logging.getLogger("vidq.api")

# Files the process needs besides its connections and uploads: database, logs, the
# listening socket, probe and ffmpeg pipes.
RESERVED_FILES = 64
BUSY_RETRY_AFTER_SECONDS = 5
REFUSAL_LOG_SECONDS = 10.0


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def open_file_limit() -> int:
    """The soft limit on open files of this process."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard limit; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. an unlimited hard limit the kernel refuses
            log.warning("could not raise the open-file limit from %d to %s: %s", soft, hard, exc)
    return open_file_limit()


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds of one server, resolved from the settings and the open-file limit."""

    open_files: int
    max_connections: int
    max_concurrent_uploads: int
    header_timeout_seconds: float
    body_idle_timeout_seconds: float
    retry_after_seconds: int = BUSY_RETRY_AFTER_SECONDS

    @classmethod
    def for_settings(cls, settings: Settings, open_files: int | None = None) -> ConnectionLimits:
        """The settings' limits; those left unset derived from the open-file limit."""
        files = open_file_limit() if open_files is None else open_files
        connections = settings.max_connections or _clamp((files - RESERVED_FILES) // 2, 16, 4096)
        uploads = settings.max_concurrent_uploads or _clamp(connections // 8, 1, 256)
        return cls(
            open_files=files,
            max_connections=connections,
            max_concurrent_uploads=uploads,
            header_timeout_seconds=settings.header_timeout_seconds,
            body_idle_timeout_seconds=settings.body_idle_timeout_seconds,
        )

    @property
    def backlog(self) -> int:
        """Connections the kernel may queue before they are accepted.

        asyncio accepts up to this many at a time before any of them reaches the cap, so
        it is kept to a fraction of the files the connections leave free."""
        return _clamp((self.open_files - self.max_connections) // 8, 16, 2048)

    def over_budget(self) -> str | None:
        """Why these limits may run out of open files anyway, or None."""
        # Each upload holds its connection, the file it is written to and, briefly, a probe.
        needed = RESERVED_FILES + self.max_connections + 2 * self.max_concurrent_uploads
        if needed <= self.open_files:
            return None
        return (
            f"{self.max_connections} connections and {self.max_concurrent_uploads} uploads "
            f"may need about {needed} open files, over the limit of {self.open_files}: "
            "lower VIDQ_MAX_CONNECTIONS or VIDQ_MAX_CONCURRENT_UPLOADS, or raise the limit"
        )


def _canned(error: VidqError) -> bytes:
    """A whole HTTP/1.1 answer for `error` as problem+json, written before any request."""
    body = json.dumps(
        problem_document(
            error.status, error.code, error.detail, title=error.title, **error.members()
        )
    ).encode()
    lines = [
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}",
        f"content-type: {MEDIA_TYPE}",
        f"content-length: {len(body)}",
        *(f"{name.lower()}: {value}" for name, value in error.headers().items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class _Guard:
    """What the connections of one server share."""

    limits: ConnectionLimits
    busy_answer: bytes
    timeout_answer: bytes
    # Connections waiting for a request's headers, oldest first: the first to go for room.
    waiting: dict[GuardedHttpToolsProtocol, None] = field(default_factory=dict)
    refused: int = 0
    refusals_logged_at: float = -math.inf


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a connection cap and header and stall time limits.

    Made for one server by `protocol_for`, which gives the class its `guard`.
    """

    guard: ClassVar[_Guard]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._refused = False
        self._request_begun = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None

    # The connection cap.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.guard.limits.max_connections and not self._make_room():
            self._refuse(transport)
            return
        super().connection_made(transport)
        self._await_request()

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for request headers; False if none waits."""
        for oldest in self.guard.waiting:
            oldest._close("evicted")
            return True
        return False

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._refused = True
        transport.write(self.guard.busy_answer)
        transport.close()
        metrics.CONNECTIONS_CLOSED.labels(reason="busy").inc()
        guard = self.guard
        guard.refused += 1
        now = self.loop.time()
        if now - guard.refusals_logged_at >= REFUSAL_LOG_SECONDS:
            log.warning(
                "at the limit of %d connections: %d refused with 503 busy since the last report",
                guard.limits.max_connections,
                guard.refused,
            )
            guard.refused, guard.refusals_logged_at = 0, now

    def _close(self, reason: str, answer: bytes | None = None) -> None:
        """Close this connection now to stay within the limits, after `answer` if given."""
        self._stop_waiting()
        self.connections.discard(self)  # its place is free now; uvicorn discards it again later
        metrics.CONNECTIONS_CLOSED.labels(reason=reason).inc()
        if answer is None:
            self.transport.abort()
        else:
            self.transport.write(answer)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._stop_waiting()
        if self._write_timer is not None:
            self._write_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    # The time limit on request headers.

    def _await_request(self) -> None:
        self._stop_waiting()
        self.guard.waiting[self] = None
        self._header_timer = self.loop.call_later(
            self.guard.limits.header_timeout_seconds, self._headers_late
        )

    def _stop_waiting(self) -> None:
        self.guard.waiting.pop(self, None)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        self._close("header_timeout", self.guard.timeout_answer if self._request_begun else None)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        self._request_begun = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Unless a pipelined request already runs, the connection now waits for the next one
        # (or for the rest of a body the answer did not need: that too may not take forever).
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._await_request()

    # The time limit on a stalled reader.

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_writes(self.transport.get_write_buffer_size())

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        super().resume_writing()

    def _watch_writes(self, buffered: int) -> None:
        self._write_timer = self.loop.call_later(
            self.guard.limits.body_idle_timeout_seconds, self._check_writes, buffered
        )

    def _check_writes(self, buffered_before: int) -> None:
        buffered = self.transport.get_write_buffer_size()
        if buffered < buffered_before:  # it reads, slowly
            self._watch_writes(buffered)
        else:
            self._write_timer = None
            self._close("write_stall")


def protocol_for(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class of one server (`uvicorn.Config(http=...)`), bound to its limits."""
    guard = _Guard(
        limits=limits,
        busy_answer=_canned(
            Busy(
                f"The server is at its limit of {limits.max_connections} connections; "
                f"retry in {limits.retry_after_seconds} seconds.",
                retry_after=limits.retry_after_seconds,
            )
        ),
        timeout_answer=_canned(
            RequestTimeout(
                f"The request headers did not arrive within {limits.header_timeout_seconds:g} seconds."
            )
        ),
    )

    class ServerProtocol(GuardedHttpToolsProtocol):
        pass

    ServerProtocol.guard = guard
    return ServerProtocol

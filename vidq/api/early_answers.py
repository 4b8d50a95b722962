"""Answering before the request's body is read, without the client seeing a reset.

An upload refused early (a bad option in the query or in a form field before the file, a
declared size over the limit, a bad key) is answered at once; but a client that is still
sending its body often reads nothing until it has sent it all, and if the server closes
the socket while bytes are still coming, the kernel answers them with a reset that can
destroy the unread answer. So such an answer lingers (as Apache's and nginx's lingering
close do): it is sent whole with `Connection: close`, then the rest of the body is read
and dropped for at most VIDQ_REFUSED_UPLOAD_DRAIN_SECONDS and
VIDQ_REFUSED_UPLOAD_DRAIN_BYTES, and only then is the connection closed. Nothing of the
body is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

# Set in the scope once the request's body has been read to its end.
_BODY_READ = "vidq.body_read"


@dataclass(frozen=True)
class DrainLimits:
    """How much of a refused body is read and dropped before the connection is closed."""

    seconds: float
    max_bytes: int


def mark_body_read(request: Request) -> None:
    """The request's body was read to its end: an answer need not linger."""
    request.scope[_BODY_READ] = True


def body_left_unread(request: Request) -> bool:
    """Whether the request has a body that was not read to its end."""
    if request.scope.get(_BODY_READ):
        return False
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


class LingeringResponse(Response):
    """`answer` sent whole with `Connection: close`; then the rest of the request's body is
    read and dropped within `limits`; then the connection closes."""

    def __init__(self, answer: Response, limits: DrainLimits) -> None:
        self.answer = answer
        self.limits = limits
        super().__init__(status_code=answer.status_code)
        self.raw_headers = [
            (name, value) for name, value in answer.raw_headers if name.lower() != b"connection"
        ]
        self.raw_headers.append((b"connection", b"close"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        # The whole answer (its Content-Length says so), but the response stays open: the
        # server reads the request's body only while its response is not complete.
        await send({"type": "http.response.body", "body": self.answer.body, "more_body": True})
        await drain(receive, self.limits)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def drain(receive: Receive, limits: DrainLimits) -> int:
    """Read and drop the request's body until it ends, the client leaves, or the limits
    are reached; returns the bytes dropped."""
    dropped = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limits.seconds):
            while dropped <= limits.max_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    break
                dropped += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
    return dropped


def answer_early(request: Request, answer: Response) -> Response:
    """`answer` as it is, or lingering if the request's body is still coming (an answer
    that closes the connection at once on purpose, `Connection: close`, stays as it is)."""
    limits: DrainLimits | None = getattr(request.app.state, "drain_limits", None)
    if (
        limits is None
        or not body_left_unread(request)
        or answer.headers.get("connection", "").lower() == "close"
    ):
        return answer
    return LingeringResponse(answer, limits)

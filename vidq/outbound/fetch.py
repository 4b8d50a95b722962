"""Fetching a URL's body for an import: GET from the checked address only, within limits.

Every address - the URL's own and each redirect's (at most `MAX_REDIRECTS`) - passes
`AddressPolicy` through `resolve_target` just before the connection is made, and the
connection goes to the very address that was approved (the URL's name is sent as `Host`
and as TLS's SNI, and the certificate is checked against it). No proxy from the
environment is used, and no credentials are sent.

The exchange is HTTP/1.1 spoken with h11 over one connection per request (`Connection:
close`, `Accept-Encoding: identity`), because an import must know exactly what the
server sent: a body shorter than its `Content-Length` is caught by h11, and one longer
than it (bytes after the declared end, before the server closes) is caught here, where a
client with a connection pool would quietly drop them. The body must arrive within the
`TransferLimits`: a size limit, a longest pause, and a lowest rate over each window.

Whatever goes wrong is a `FetchFailed` whose message a user can act on, marked
`transient` when trying again later may help.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import h11
import httpx

from vidq import __version__
from vidq.errors import TargetRefused, TargetUnresolved
from vidq.outbound.targets import AddressPolicy, OutboundTarget, resolve_target

MAX_REDIRECTS = 5
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
TRANSIENT_STATUSES = (408, 425, 429, 500, 502, 503, 504)
READ_BYTES = 256 * 1024
# How long to look for bytes past the declared end once the body is complete.
EXCESS_WAIT_SECONDS = 0.5
USER_AGENT = f"vidq/{__version__} (imports)"

_Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class FetchFailed(Exception):
    """The body could not be fetched; `transient` when trying again later may help."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        self.message = message
        self.transient = transient
        super().__init__(message)


@dataclass(frozen=True)
class TransferLimits:
    """What a transfer must keep to: at most `max_bytes`, no pause longer than
    `stall_seconds`, and at least `min_bytes_per_second` over each window of that length."""

    max_bytes: int
    stall_seconds: float
    min_bytes_per_second: int = 0


class _Exchange:
    """One request and its answer over one connection to an approved address."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stall_seconds: float
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.stall_seconds = stall_seconds
        self.h11 = h11.Connection(h11.CLIENT)

    async def send(self, target: OutboundTarget) -> None:
        request = h11.Request(
            method="GET",
            target=target.url.raw_path,
            headers=[
                ("Host", target.host_header),
                ("User-Agent", USER_AGENT),
                ("Accept", "*/*"),
                ("Accept-Encoding", "identity"),
                ("Connection", "close"),
            ],
        )
        self.writer.write(self.h11.send(request) + self.h11.send(h11.EndOfMessage()))
        await self.writer.drain()

    async def next_event(self) -> object:
        """The next thing the server sent (an h11 event, or h11.PAUSED); TimeoutError after
        `stall_seconds` of silence."""
        while (event := self.h11.next_event()) is h11.NEED_DATA:
            async with asyncio.timeout(self.stall_seconds):
                data = await self.reader.read(READ_BYTES)
            self.h11.receive_data(data)
        return event

    async def excess(self) -> bytes:
        """Bytes the server sent after the end of the message (it should send none)."""
        data, closed = self.h11.trailing_data
        if data or closed:
            return bytes(data)
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(EXCESS_WAIT_SECONDS):
                return await self.reader.read(READ_BYTES)
        return b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1):
                await self.writer.wait_closed()


def _where(url: httpx.URL) -> str:
    return f"{url.host}:{url.port}" if url.port else url.host


async def _open(target: OutboundTarget, tls: ssl.SSLContext | None) -> _Streams:
    """A connection to the first of the approved addresses that answers (a name may have
    an IPv6 and an IPv4 address, only one of them reachable)."""
    failure: OSError | None = None
    for address in target.addresses or (target.address,):
        try:
            return await asyncio.open_connection(
                address, target.port, ssl=tls, server_hostname=target.server_name if tls else None
            )
        except ssl.SSLError:
            raise
        except OSError as exc:
            failure = exc
    assert failure is not None
    raise failure


async def _connect(target: OutboundTarget, stall_seconds: float) -> _Exchange:
    tls = ssl.create_default_context() if target.url.scheme == "https" else None
    try:
        async with asyncio.timeout(stall_seconds):
            reader, writer = await _open(target, tls)
    except TimeoutError as exc:
        raise FetchFailed(
            f"could not connect to {_where(target.url)} within {stall_seconds:g} s",
            transient=True,
        ) from exc
    except ssl.SSLError as exc:
        raise FetchFailed(f"TLS with {_where(target.url)} failed: {exc.reason or exc}") from exc
    except OSError as exc:
        raise FetchFailed(
            f"could not connect to {_where(target.url)} ({exc.strerror or exc})", transient=True
        ) from exc
    return _Exchange(reader, writer, stall_seconds)


async def _target(url: httpx.URL, policy: AddressPolicy, hops: int) -> OutboundTarget:
    try:
        return await resolve_target(url, policy)
    except TargetRefused as exc:
        if hops == 0:
            raise FetchFailed(f"the URL {exc}") from exc
        raise FetchFailed(f"the server redirected to {url}, which was refused: it {exc}") from exc
    except TargetUnresolved as exc:
        raise FetchFailed(str(exc), transient=True) from exc


@dataclass
class Body:
    """The answer to a successful GET: its declared size and type, and its bytes to read."""

    url: httpx.URL  # where the body came from, after redirects
    declared_bytes: int | None
    content_type: str | None
    _exchange: _Exchange
    _limits: TransferLimits

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, held to the limits; FetchFailed says what went wrong."""
        limits = self._limits
        received = 0
        window_start, window_bytes = time.monotonic(), 0
        while True:
            try:
                event = await self._exchange.next_event()
            except TimeoutError as exc:
                raise FetchFailed(
                    f"the transfer stalled: nothing arrived for {limits.stall_seconds:g} s "
                    f"after {received} bytes",
                    transient=True,
                ) from exc
            except (h11.RemoteProtocolError, OSError) as exc:
                raise FetchFailed(self._cut_short(received, exc), transient=True) from exc
            if isinstance(event, h11.EndOfMessage):
                break
            if not isinstance(event, h11.Data):
                continue
            received += len(event.data)
            if received > limits.max_bytes:
                raise FetchFailed(f"the file is larger than the limit of {limits.max_bytes} bytes")
            yield bytes(event.data)
            window_bytes += len(event.data)
            elapsed = time.monotonic() - window_start
            if elapsed >= limits.stall_seconds:
                rate = window_bytes / elapsed
                if rate < limits.min_bytes_per_second:
                    raise FetchFailed(
                        f"the transfer is too slow: {rate:.0f} bytes/s over the last "
                        f"{elapsed:.1f} s, below the minimum of {limits.min_bytes_per_second}"
                    )
                window_start, window_bytes = time.monotonic(), 0
        if await self._exchange.excess():
            raise FetchFailed(
                f"the server sent more than the {self.declared_bytes} bytes its "
                "Content-Length declared"
                if self.declared_bytes is not None
                else "the server sent bytes after the end of the body"
            )

    def _cut_short(self, received: int, exc: BaseException) -> str:
        if self.declared_bytes is not None and received < self.declared_bytes:
            return (
                f"the connection ended after {received} of the {self.declared_bytes} bytes "
                "its Content-Length declared"
            )
        return f"the connection failed after {received} bytes ({exc})"


async def _head(exchange: _Exchange, url: httpx.URL) -> h11.Response:
    """The final (non-1xx) response head."""
    while True:
        try:
            event = await exchange.next_event()
        except TimeoutError as exc:
            raise FetchFailed(
                f"{_where(url)} sent no answer within {exchange.stall_seconds:g} s",
                transient=True,
            ) from exc
        except (h11.RemoteProtocolError, OSError) as exc:
            raise FetchFailed(
                f"{_where(url)} did not answer with valid HTTP ({exc})", transient=True
            ) from exc
        if isinstance(event, h11.Response):
            return event


def _header(response: h11.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


@contextlib.asynccontextmanager
async def open_body(url: str, policy: AddressPolicy, limits: TransferLimits) -> AsyncIterator[Body]:
    """GET `url`, following at most `MAX_REDIRECTS` redirects (each checked), and yield
    the body of its `200 OK`; FetchFailed for anything else."""
    current = httpx.URL(url)
    for hops in range(MAX_REDIRECTS + 1):
        target = await _target(current, policy, hops)
        exchange = await _connect(target, limits.stall_seconds)
        try:
            try:
                await exchange.send(target)
            except OSError as exc:
                raise FetchFailed(f"sending the request failed ({exc})", transient=True) from exc
            response = await _head(exchange, current)
            status = response.status_code
            location = _header(response, b"location")
            if status in REDIRECT_STATUSES and location:
                try:
                    current = current.join(location).copy_with(fragment=None)
                except (httpx.InvalidURL, ValueError) as exc:
                    raise FetchFailed(
                        f"the server redirected to an invalid URL ({location!r})"
                    ) from exc
                continue
            if status != 200:
                reason = bytes(response.reason).decode("latin-1")
                raise FetchFailed(
                    f"the server answered HTTP {status} {reason}".rstrip(),
                    transient=status in TRANSIENT_STATUSES,
                )
            length = _header(response, b"content-length")
            declared = int(length) if length and length.isdigit() else None
            if declared is not None and declared > limits.max_bytes:
                raise FetchFailed(
                    f"the file is larger than the limit of {limits.max_bytes} bytes "
                    f"(its Content-Length is {declared})"
                )
            yield Body(current, declared, _header(response, b"content-type"), exchange, limits)
            return
        finally:
            await exchange.close()
    raise FetchFailed(f"the server redirected more than {MAX_REDIRECTS} times")

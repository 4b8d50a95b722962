"""A TCP proxy on loopback whose faults a test switches on and off: an outage on demand.

Put in front of a server (the moto S3 server, say), it forwards bytes both ways while
`healthy`. Switched to a fault, it first cuts every connection it carries, then meets
each new one with the fault:

- `error`: reads the request's head and answers `500 Internal Server Error` with an S3
  `InternalError` body, then closes (a bucket having a bad moment);
- `drop`: resets the connection as soon as it opens (a network cut, a crashed endpoint);
- `flaky`: `error` and `drop` in turn.

It runs its own event loop in a thread, so that tests and processes may use it alike.
It counts the bytes clients send through it (`sent_bytes`), and may hold them to a rate
(`upload_bytes_per_second`, None: as fast as they come), like a slow uplink.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal
from urllib.parse import urlsplit

Mode = Literal["healthy", "error", "drop", "flaky"]

S3_ERROR_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message>"
    b"<RequestId>fault-injected</RequestId></Error>"
)
S3_ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\n"
    b"Content-Type: application/xml\r\n"
    b"Content-Length: " + str(len(S3_ERROR_BODY)).encode() + b"\r\n"
    b"Connection: close\r\n\r\n" + S3_ERROR_BODY
)
HEAD_LIMIT = 64 * 1024
CHUNK = 64 * 1024


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN: the peer sees `connection reset`."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultyProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port`, with faults on demand."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "healthy"
        self.faults_served = 0  # connections met with a fault
        self.forwarded = 0  # connections forwarded
        self._alternate = itertools.cycle(("error", "drop"))
        self.sent_bytes = 0  # from clients to the target, all connections
        self.upload_bytes_per_second: float | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, name="faulty-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        assert self._server is not None
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self._ready.set()
        self._loop.run_forever()
        # Stopped: end the connections' tasks, then the loop.
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    def set_mode(self, mode: Mode) -> None:
        """Switch the fault (cutting every connection carried if it is one); returns at once."""
        self.mode = mode
        if mode != "healthy":
            self._loop.call_soon_threadsafe(self._cut_all)

    @contextmanager
    def fault(self, mode: Mode = "flaky") -> Iterator[FaultyProxy]:
        """The fault for the duration of the block, healthy again after."""
        self.set_mode(mode)
        try:
            yield self
        finally:
            self.set_mode("healthy")

    def _cut_all(self) -> None:
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        if mode == "flaky":
            mode = next(self._alternate)  # type: ignore[assignment]
        if mode != "healthy":
            self.faults_served += 1
            await self._fault(mode, reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self.forwarded += 1
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, upstream=True),
                self._pipe(up_reader, writer),
                return_exceptions=True,
            )
        finally:
            self._open.discard(writer)
            self._open.discard(up_writer)
            for end in (writer, up_writer):
                end.transport.abort()

    async def _fault(
        self, mode: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if mode == "drop":
            _reset(writer)
            return
        try:
            async with asyncio.timeout(10):
                head = (await reader.readuntil(b"\r\n\r\n")).lower()
                # Read the body (unless the client waits for `100 Continue`): a socket closed
                # with unread bytes resets, and the client might never see the answer.
                if b"expect: 100-continue" not in head:
                    await reader.readexactly(_content_length(head))
            writer.write(S3_ERROR)
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            _reset(writer)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, upstream: bool = False
    ) -> None:
        try:
            while data := await source.read(CHUNK):
                if upstream:
                    self.sent_bytes += len(data)
                    if self.upload_bytes_per_second:
                        await asyncio.sleep(len(data) / self.upload_bytes_per_second)
                sink.write(data)
                await sink.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                if sink.can_write_eof():
                    sink.write_eof()

    def close(self) -> None:
        def stop() -> None:
            self._cut_all()
            if self._server is not None:
                self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def proxy_to(url: str) -> FaultyProxy:
    """A healthy proxy in front of the server at `url` (`http://host:port`)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return FaultyProxy(parts.hostname, parts.port)


def _content_length(head: bytes) -> int:
    """The Content-Length of a request head (lower-cased), 0 if it has none."""
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            return int(value.strip() or 0)
    return 0

"""A real HTTP file server on loopback for import tests, and a TCP proxy that cuts connections.

`FileServer` answers each path from a script: a body with an honest, lying or no
Content-Length, redirects, an error status, a trickle, a body that waits for the test.
It counts requests per path. `CuttingProxy` forwards a loopback port to another and
closes a connection (both ways) once the client has sent a given number of bytes, as a
network that fails mid-upload would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = BaseHTTPRequestHandler


@dataclass
class Body:
    """How one path answers: `data` in pieces of `piece_bytes`, `pause_seconds` apart."""

    data: bytes = b""
    status: int = 200
    content_type: str = "video/mp4"
    # None: the true length; an int: that (lying) length; "chunked": no length, chunked.
    length: int | str | None = None
    piece_bytes: int = 64 * 1024
    pause_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # after the first piece, wait for this
    fail_first: int = 0  # answer 503 to this many requests first


def redirect(location: str, status: int = 302) -> Body:
    return Body(status=status, headers={"Location": location}, content_type="text/plain")


class FileServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 answering `routes` (path -> Body)."""

    def __init__(self, routes: dict[str, Body] | None = None) -> None:
        self.routes: dict[str, Body] = dict(routes or {})
        self.requests: Counter[str] = Counter()
        self.sent_first_piece = threading.Event()
        self._lock = threading.Lock()
        files = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with files._lock:
                    files.requests[self.path] += 1
                    count = files.requests[self.path]
                body = files.routes.get(self.path)
                if body is None:
                    self._answer(Body(status=404, data=b"no such file", content_type="text/plain"))
                elif count <= body.fail_first:
                    self._answer(Body(status=503, data=b"try later", content_type="text/plain"))
                else:
                    self._answer(body)

            def _answer(self, body: Body) -> None:
                self.send_response(body.status)
                self.send_header("Content-Type", body.content_type)
                for name, value in body.headers.items():
                    self.send_header(name, value)
                if body.length == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    declared = len(body.data) if body.length is None else body.length
                    self.send_header("Content-Length", str(declared))
                self.send_header("Connection", "close")
                self.end_headers()
                self._send_pieces(body)
                self.close_connection = True

            def _send_pieces(self, body: Body) -> None:
                chunked = body.length == "chunked"
                for start in range(0, len(body.data), body.piece_bytes):
                    piece = body.data[start : start + body.piece_bytes]
                    if chunked:
                        piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                    self.wfile.write(piece)
                    self.wfile.flush()
                    if start == 0:
                        files.sent_first_piece.set()
                        if body.hold is not None:
                            body.hold.wait(30)
                    if body.pause_seconds:
                        time.sleep(body.pause_seconds)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that stopped reading (a refused or cancelled import) is expected

        self.server = Server(("127.0.0.1", 0), RequestHandler)
        self.port = int(self.server.server_address[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str) -> str:
        return self.base + path

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


class CuttingProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target_port`; once clients have sent more
    than `cut_after_bytes` in all (over however many connections), the connection that
    passes the mark is closed both ways at that point. Later ones pass untouched."""

    def __init__(self, target_port: int, cut_after_bytes: int) -> None:
        self.target_port = target_port
        self.cut_after_bytes: int | None = cut_after_bytes
        self.sent_bytes = 0
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._closing = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            sockets = (client, upstream)
            threading.Thread(
                target=self._pump, args=(client, upstream, sockets, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, sockets, False), daemon=True
            ).start()

    def _pump(
        self,
        source: socket.socket,
        target: socket.socket,
        sockets: tuple[socket.socket, socket.socket],
        upstream: bool,
    ) -> None:
        try:
            while data := source.recv(65536):
                if upstream:
                    with self._lock:
                        limit, before = self.cut_after_bytes, self.sent_bytes
                        cut = limit is not None and before + len(data) > limit
                        if cut:
                            self.cut_after_bytes = None
                            self.cuts += 1
                        self.sent_bytes += len(data)
                    if cut:
                        assert limit is not None
                        target.sendall(data[: limit - before])
                        break
                target.sendall(data)
        except OSError:
            pass
        for sock in sockets:
            _close(sock)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        self.listener.close()
        self._thread.join(5)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()

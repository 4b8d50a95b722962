"""What an idle or slow client can hold: connections, header and body time limits, upload
slots, the open-file limit. Raw sockets play the clients that never finish."""

from __future__ import annotations

import contextlib
import json
import resource
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import uvicorn

from vidq import metrics
from vidq.api.connections import RESERVED_FILES, ConnectionLimits, protocol_for
from vidq.config import Settings

from .conftest import free_port, make_settings, running_server
from .helpers import (
    PROBLEM,
    api_client,
    assert_problem,
    post_convert,
    stored_blobs,
    wait_done,
)
from .processes import VidqProcess

PARTIAL_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@contextlib.contextmanager
def closing_all() -> Iterator[list[socket.socket]]:
    """A list of sockets, every one closed at the end."""
    sockets: list[socket.socket] = []
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def open_silent(port: int, count: int, into: list[socket.socket]) -> list[socket.socket]:
    """`count` connections to the port, opened all at once, that send nothing."""
    opened = []
    with selectors.DefaultSelector() as selector:
        for _ in range(count):
            sock = socket.socket()
            into.append(sock)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            selector.register(sock, selectors.EVENT_WRITE)
            opened.append(sock)
        pending, deadline = count, time.monotonic() + 20
        while pending:
            assert time.monotonic() < deadline, f"{pending} connections never opened"
            for key, _ in selector.select(1):
                selector.unregister(key.fileobj)
                pending -= 1
    for sock in opened:
        sock.setblocking(True)
    return opened


def start_stalled_upload(port: int, key: str, into: list[socket.socket]) -> socket.socket:
    """An authenticated raw upload that sends its headers and one byte of 100 000, then stops."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    into.append(sock)
    sock.sendall(
        b"POST /convert HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {key}\r\n".encode()
        + b"Content-Type: video/mp4\r\nContent-Length: 100000\r\n\r\n\x00"
    )
    return sock


def read_answer(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body of the one answer the server writes before closing."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes `sock` within `timeout` without a word."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def assert_canned_problem(
    answer: tuple[int, dict[str, str], bytes], status: int, code: str
) -> None:
    got, headers, body = answer
    assert got == status, (got, headers, body)
    assert headers["content-type"] == PROBLEM and headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["status"] == status and problem["code"] == code and problem["detail"]
    assert problem["type"].endswith(code) and problem["title"]
    if status == 503:
        assert int(headers["retry-after"]) > 0


def own_open_files_at_least(count: int) -> None:
    """Let this test process open `count` files, or skip the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count:
        if hard != resource.RLIM_INFINITY and hard < count:
            pytest.skip(f"needs {count} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


# The real process, under an open-file limit it would exhaust without the bounds.

SERVER_OPEN_FILES = (128, 256)  # soft, hard: vidq raises the soft limit to 256 at start
SILENT = 300  # more than the server may open
STALLED = 30  # more than its 12 upload slots


def test_idle_and_stalled_clients_cannot_take_every_file(tmp_path: Path, clip: Path) -> None:
    own_open_files_at_least(SILENT + STALLED + 128)
    server = VidqProcess(
        "serve",
        tmp_path / "data",
        env={
            "VIDQ_WORKERS": "1",
            "VIDQ_HEADER_TIMEOUT_SECONDS": "3",
            "VIDQ_BODY_IDLE_TIMEOUT_SECONDS": "3",
        },
        port=free_port(),
        open_files=SERVER_OPEN_FILES,
    )
    server.start()
    try:
        assert server.port is not None
        process = psutil.Process(server.pid)
        assert process.rlimit(psutil.RLIMIT_NOFILE) == (256, 256)
        assert "open-file limit 256: at most 96 connections and 12 uploads" in server.log()
        key = (tmp_path / "data" / "api-key").read_text().strip()
        with closing_all() as sockets:
            silent = open_silent(server.port, SILENT, sockets)
            for sock in silent[::3]:  # a third begin their headers and never finish them
                with contextlib.suppress(OSError):
                    sock.send(PARTIAL_HEADERS)
            stalled = [start_stalled_upload(server.port, key, sockets) for _ in range(STALLED)]
            # Within the budget the defaults were sized for: connections, uploads, the rest.
            assert process.num_fds() <= 96 + 2 * 12 + RESERVED_FILES

            for _ in range(3):
                started = time.monotonic()
                response = httpx.get(server.url + "/healthz", timeout=5)
                assert response.status_code == 200
                assert time.monotonic() - started < 2
            with api_client(server.url, key) as client:
                response = post_convert(client, clip)
            if response.status_code == 503:  # the stalled uploads hold every upload slot
                assert_problem(response, 503, "busy")
                assert int(response.headers["retry-after"]) > 0
            else:
                assert response.status_code == 202, response.text

            # 12 stalled uploads took the slots and end with 408; the others had 503 at once.
            answers = [read_answer(sock) for sock in stalled]
            assert Counter(status for status, _, _ in answers) == {408: 12, 503: STALLED - 12}
            for answer in answers:
                assert_canned_problem(
                    answer, answer[0], "request_timeout" if answer[0] == 408 else "busy"
                )

        # With the idle clients gone, everything works again.
        with api_client(server.url, key) as client:
            assert client.get("/healthz").status_code == 200
            response = post_convert(client, clip)
            assert response.status_code == 202, response.text
            assert wait_done(client, response.json()["id"])["status"] == "completed"
        log = server.log()
        assert "Too many open files" not in log and "Traceback" not in log
        kept = stored_blobs(tmp_path / "data" / "files")
        assert [p.parent.name for p in kept] == ["outputs"], kept  # the completed job's output
    finally:
        server.stop()


# The same bounds, each on its own, in a server running in this process.


def test_over_the_cap_a_connection_is_answered_busy_before_it_sends_anything(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, max_connections=3, max_concurrent_uploads=3)
    with running_server(settings) as live, closing_all() as sockets:
        port = live.settings.port
        for _ in range(3):
            start_stalled_upload(port, live.key, sockets)
        time.sleep(0.2)
        newcomer = socket.create_connection(("127.0.0.1", port))
        sockets.append(newcomer)
        assert_canned_problem(read_answer(newcomer, timeout=2), 503, "busy")
        response = httpx.get(live.url + "/healthz")
        assert_problem(response, 503, "busy")
        assert response.headers["retry-after"] == "5"
        for sock in sockets:
            sock.close()
        time.sleep(0.2)
        assert httpx.get(live.url + "/healthz").status_code == 200


def test_at_the_cap_the_connection_waiting_longest_for_headers_makes_room(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, max_connections=3)
    with running_server(settings) as live, closing_all() as sockets:
        first, second, _third = open_silent(live.settings.port, 3, sockets)
        time.sleep(0.1)
        assert httpx.get(live.url + "/healthz").status_code == 200
        assert closed_by_server(first, timeout=1)
        assert not closed_by_server(second, timeout=0.2)


def test_request_headers_must_arrive_in_time(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, header_timeout_seconds=0.5)
    with running_server(settings) as live, closing_all() as sockets:
        silent, partial = open_silent(live.settings.port, 2, sockets)
        partial.send(PARTIAL_HEADERS)
        started = time.monotonic()
        assert closed_by_server(silent, timeout=3)
        assert_canned_problem(read_answer(partial, timeout=3), 408, "request_timeout")
        assert time.monotonic() - started < 2
        # A client that sends its request at once is not hurried.
        assert httpx.get(live.url + "/healthz").status_code == 200


@pytest.mark.parametrize("form", ["raw", "multipart"])
def test_a_stalled_upload_ends_with_408_and_keeps_nothing(tmp_path: Path, form: str) -> None:
    settings = make_settings(tmp_path, body_idle_timeout_seconds=0.5)
    with running_server(settings) as live, closing_all() as sockets:
        sock = socket.create_connection(("127.0.0.1", live.settings.port))
        sockets.append(sock)
        if form == "raw":
            content_type, body = "video/mp4", b"\x00" * 1000
        else:
            content_type = "multipart/form-data; boundary=b"
            body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
            body += b"\x00" * 1000
        sock.sendall(
            f"POST /convert HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {live.key}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: 100000\r\n\r\n".encode()
            + body
        )
        started = time.monotonic()
        answer = read_answer(sock, timeout=5)
        assert_canned_problem(answer, 408, "request_timeout")
        assert 0.4 < time.monotonic() - started < 3
        assert stored_blobs(live.settings.data_dir / "files") == []


def test_the_upload_cap_answers_busy_and_frees_its_slot(tmp_path: Path, clip: Path) -> None:
    settings = make_settings(tmp_path, max_concurrent_uploads=1)
    with running_server(settings) as live, live.client() as client:
        with closing_all() as sockets:
            start_stalled_upload(live.settings.port, live.key, sockets)
            time.sleep(0.2)
            response = post_convert(client, clip)
            assert_problem(response, 503, "busy")
            assert response.headers["retry-after"] == "5"
            assert response.headers["connection"] == "close"
        time.sleep(0.2)  # the stalled upload's client is gone: its slot is free again
        assert post_convert(client, clip).status_code == 202


# A client that stops reading its answer, against the protocol alone.

ANSWER_BYTES = 64 * 1024 * 1024


def write_stalls() -> float:
    """Connections this process has cut off for not reading their answer."""
    labels = {"reason": "write_stall"}
    return metrics.REGISTRY.get_sample_value("vidq_connections_closed_total", labels) or 0.0


async def _long_answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    headers = [(b"content-length", str(ANSWER_BYTES).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    chunk = b"x" * 65536
    for _ in range(ANSWER_BYTES // len(chunk)):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def test_a_client_that_stops_reading_is_cut_off(tmp_path: Path) -> None:
    limits = ConnectionLimits.for_settings(make_settings(tmp_path, body_idle_timeout_seconds=0.5))
    port = free_port()
    config = uvicorn.Config(
        _long_answer,
        host="127.0.0.1",
        port=port,
        http=protocol_for(limits),
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    before = write_stalls()
    try:
        while not server.started:
            time.sleep(0.02)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            deadline = time.monotonic() + 10
            while write_stalls() == before:
                assert time.monotonic() < deadline, "the stalled reader was never cut off"
                time.sleep(0.05)
            received = 0
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
            assert received < ANSWER_BYTES
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# How the limits follow from the settings and the open-file limit.


@pytest.mark.parametrize(
    ("open_files", "connections", "uploads"),
    [(256, 96, 12), (1024, 480, 60), (65536, 4096, 256), (100, 18, 2)],
)
def test_default_limits_follow_the_open_file_limit(
    tmp_path: Path, open_files: int, connections: int, uploads: int
) -> None:
    limits = ConnectionLimits.for_settings(make_settings(tmp_path), open_files=open_files)
    assert (limits.max_connections, limits.max_concurrent_uploads) == (connections, uploads)
    assert limits.backlog <= max(16, (open_files - connections) // 8)
    if open_files >= 256:
        assert limits.over_budget() is None


def test_limits_set_beyond_the_open_files_are_reported(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_connections=1000, max_concurrent_uploads=10)
    limits = ConnectionLimits.for_settings(settings, open_files=1024)
    assert (limits.max_connections, limits.max_concurrent_uploads) == (1000, 10)
    problem = limits.over_budget()
    assert problem is not None and "VIDQ_MAX_CONNECTIONS" in problem and "1024" in problem


def test_limit_settings_are_validated() -> None:
    for name in ("max_connections", "max_concurrent_uploads"):
        with pytest.raises(ValueError, match=name):
            Settings(**{name: 0})
    with pytest.raises(ValueError, match="header_timeout_seconds"):
        Settings(header_timeout_seconds=0)

"""A bad option is answered before the upload is read, and the client reads the answer.

The 422 comes as soon as the bad field (or query) has arrived, while the client is still
sending its file; the server then reads and drops the rest of the body for a bounded time
and size before it closes, so the client is not reset and sees the whole answer. Nothing
is stored. Sent byte by byte over a socket, as a slow client would, and by Chromium.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from vidq.datadir import STORAGE_DIR

from .browser import browser_page, require_chromium
from .conftest import LiveServer, make_settings, running_server
from .helpers import stored_blobs

BOUNDARY = "vidq-test-boundary"
CHUNK_BYTES = 256 * 1024


def _form_head(field: str, value: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n{value}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()


class SlowUpload:
    """A client that sends a request's head and start at once, then the rest of its body
    slowly from a thread, while the test reads the answer."""

    def __init__(
        self, live: LiveServer, target: str, content_type: str, start: bytes, rest: int, end: bytes
    ) -> None:
        length = len(start) + rest + len(end)
        head = (
            f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {live.key}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode()
        host, port = live.url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.sendall(head + start)
        self.rest, self.end = rest, end
        self.sent = 0
        self.finished_at: float | None = None
        self.error: OSError | None = None
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        try:
            chunk = b"\0" * CHUNK_BYTES
            while self.sent < self.rest:
                size = min(CHUNK_BYTES, self.rest - self.sent)
                self.sock.sendall(chunk[:size])
                self.sent += size
                time.sleep(0.05)
            self.sock.sendall(self.end)
            self.finished_at = time.monotonic()
        except OSError as exc:
            self.error = exc

    def read_answer(self) -> tuple[int, dict[str, str], dict[str, Any], float]:
        """Status, headers and JSON body of the answer, and when it was complete."""
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        while len(body) < int(headers["content-length"]):
            body += self._recv()
        return int(lines[0].split()[1]), headers, json.loads(body), time.monotonic()

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        assert data, "the server closed before its answer was complete"
        return data

    def close(self) -> None:
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture
def server_settings(tmp_path: Path) -> Any:
    return make_settings(tmp_path, workers=0)


def _nothing_kept(live: LiveServer) -> None:
    assert stored_blobs(live.settings.data_dir / STORAGE_DIR) == []
    with live.client() as client:
        assert client.get("/jobs").json()["jobs"] == []


@pytest.mark.parametrize(
    ("target", "content_type", "start", "end"),
    [
        (
            "/convert",
            f"multipart/form-data; boundary={BOUNDARY}",
            _form_head("width", "5"),
            f"\r\n--{BOUNDARY}--\r\n".encode(),
        ),
        ("/convert?filename=big.mp4&width=5", "video/mp4", b"", b""),
    ],
    ids=["form-field", "raw-query"],
)
def test_a_bad_option_is_answered_while_the_upload_comes(
    live_server: LiveServer, target: str, content_type: str, start: bytes, end: bytes
) -> None:
    upload = SlowUpload(live_server, target, content_type, start, 8 * 1024 * 1024, end)
    try:
        status, headers, problem, answered_at = upload.read_answer()
        assert upload.finished_at is None, "the answer waited for the whole upload"
        assert upload.sent < upload.rest
        assert status == 422 and problem["code"] == "invalid_option"
        assert [e["field"] for e in problem["errors"]] == ["width"]
        assert headers["connection"] == "close"
        # The server reads the rest and then closes: the client sent everything, unhurt.
        upload.thread.join(timeout=30)
        assert upload.error is None and upload.finished_at is not None
        assert upload.sock.recv(1) == b""  # a clean end of the stream, not a reset
        print(f"answered {upload.finished_at - answered_at:.1f} s before the upload ended")
    finally:
        upload.close()
    _nothing_kept(live_server)


def test_the_drain_is_bounded(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, workers=0, refused_upload_drain_seconds=0.5, refused_upload_drain_bytes=2**20
    )
    with running_server(settings) as live:
        upload = SlowUpload(
            live,
            "/convert",
            f"multipart/form-data; boundary={BOUNDARY}",
            _form_head("preset", "nope"),
            64 * 1024 * 1024,
            b"",
        )
        try:
            status, _, problem, answered_at = upload.read_answer()
            assert status == 422 and problem["errors"][0]["field"] == "preset"
            # It stops reading a body that goes on: the connection ends soon after.
            with contextlib.suppress(ConnectionResetError):
                assert upload.sock.recv(1) == b""
            assert time.monotonic() - answered_at < 3
            upload.thread.join(timeout=30)
            assert upload.finished_at is None  # the client could not send it all
        finally:
            upload.close()
        _nothing_kept(live)


def test_chromium_sees_the_answer_to_a_refused_upload(live_server: LiveServer) -> None:
    chromium = require_chromium()
    with browser_page(
        chromium, expected_console_error=lambda text: "Failed to load resource" in text
    ) as page:
        page.goto(f"{live_server.url}/healthz")
        status, body = page.evaluate(
            """async (key) => {
                const form = new FormData();
                form.append("crf", "999");
                form.append("file", new Blob([new Uint8Array(32 * 1024 * 1024)]), "big.mp4");
                const answer = await fetch("/convert", {
                    method: "POST", body: form, headers: {Authorization: "Bearer " + key},
                });
                return [answer.status, await answer.json()];
            }""",
            live_server.key,
        )
    assert status == 422 and body["errors"][0]["field"] == "crf"
    _nothing_kept(live_server)

"""Real receivers for notification tests: an HTTP server and an SMTP server, both on loopback."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from vidq.db.database import Database
from vidq.db.models import Job
from vidq.jobs import queue
from vidq.jobs.views import NotificationPayloads


@dataclass
class Reply:
    """How the receiver answers one request."""

    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # wait for this before answering


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers from a script."""

    def __init__(self, replies: list[Reply] | None = None) -> None:
        self.replies = list(replies or [])
        self.received: list[Received] = []
        self.connections = 0
        self.arrived = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    reply = receiver.replies.pop(0) if receiver.replies else Reply()
                receiver.arrived.set()
                if reply.hold is not None:
                    reply.hold.wait(30)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                with receiver._lock:
                    receiver.connections += 1
                return True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that went away mid-answer (a killed sender) is expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


class MailHandler:
    """An aiosmtpd handler that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


@contextmanager
def smtp_server(port: int) -> Iterator[MailHandler]:
    """A real SMTP server on 127.0.0.1:`port` for the duration of the block."""
    handler = MailHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


INPUT_INFO = {
    "container": "mp4",
    "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
    "duration_seconds": 1.0,
    "video": None,
    "audio": None,
}


# What the service builds notification bodies with.
PAYLOADS = NotificationPayloads(secret="test-signing-key", public_url="http://vidq.test")


async def finished_job(
    db: Database,
    owner_id: str,
    *,
    webhook_url: str | None = None,
    email: str | None = None,
    completed: bool = False,
) -> Job:
    """A job submitted, claimed and ended through the queue, so its outbox rows exist."""
    job_id = str(uuid.uuid4())
    new = queue.NewJob(
        id=job_id,
        owner_id=owner_id,
        input_filename="holiday.mov",
        input_content_type="video/quicktime",
        input_size_bytes=1000,
        input_sha256="0" * 64,
        input_info=INPUT_INFO,
        options={"preset": "mp4-h264"},
        metadata={},
        webhook_url=webhook_url,
        email=email,
    )
    await queue.submit(db, new, max_unfinished=100)
    claim = await queue.claim_next(db, worker_id="test-worker", lease_seconds=30)
    assert claim is not None and claim.job.id == job_id
    if completed:
        ended = await queue.complete(
            db,
            claim,
            output_key=f"outputs/{job_id}",
            result={"filename": "holiday.mp4", "size_bytes": 10, "content_type": "video/mp4"},
            retention_seconds=3600,
            payloads=PAYLOADS,
        )
    else:
        ended = await queue.fail(
            db, claim, code="transcode_failed", message="ffmpeg gave up", payloads=PAYLOADS
        )
    assert ended is not None
    return ended

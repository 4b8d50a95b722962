"""Email notifications through a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from sqlalchemy import select

from vidq.config import Settings
from vidq.db.database import Database
from vidq.db.models import Notification
from vidq.errors import InvalidOption
from vidq.jobs.accounts import create_owner
from vidq.jobs.fields import check_fields
from vidq.notify.email import SmtpServer
from vidq.notify.notifier import Notifier

from .conftest import free_port
from .notify_receivers import MailHandler, finished_job, smtp_server

notifications = Notification.__table__
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _settings(db: Database, port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db.url,
        "smtp_url": f"smtp://127.0.0.1:{port}",
        "smtp_from": "vidq@example.org",
        "webhook_timeout_seconds": 2.0,
        "notify_retry_seconds": "0,0.2,0.2",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def running(db: Database) -> AsyncIterator[list[Notifier]]:
    """Notifiers the test starts; stopped at the end."""
    started: list[Notifier] = []
    yield started
    for notifier in started:
        await notifier.stop()


def _start(running: list[Notifier], settings: Settings, db: Database) -> None:
    notifier = Notifier(settings, db, poll_seconds=0.1)
    notifier.start()
    running.append(notifier)


async def _row(db: Database, job_id: str) -> dict[str, Any]:
    async with db.read() as conn:
        stmt = select(notifications).where(notifications.c.job_id == job_id)
        return dict((await conn.execute(stmt)).mappings().one())


async def _until(db: Database, job_id: str, check: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while not check(row := await _row(db, job_id)):
        assert time.monotonic() < deadline, row
        await asyncio.sleep(0.05)
    return row


def _parsed(envelope: Envelope) -> EmailMessage:
    assert isinstance(envelope.original_content, bytes)
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_completed_job_is_mailed(db: Database, running: list[Notifier]) -> None:
    owner, _ = await create_owner(db, "alice")
    port = free_port()
    with smtp_server(port) as mailbox:
        job = await finished_job(db, owner.id, email="bob@example.org", completed=True)
        _start(running, _settings(db, port), db)
        row = await _until(db, job.id, lambda r: r["status"] == "delivered")
    assert row["attempts"] == 1
    assert len(mailbox.messages) == 1
    envelope = mailbox.messages[0]
    assert envelope.mail_from == "vidq@example.org"
    assert envelope.rcpt_tos == ["bob@example.org"]
    message = _parsed(envelope)
    assert message["To"] == "bob@example.org"
    assert message["From"] == "vidq@example.org"
    assert job.id in message["Subject"] and "completed" in message["Subject"]
    assert message["Message-ID"] == f"<{row['id']}@example.org>"
    assert message.get_content_type() == "text/plain"
    body = message.get_content()
    assert job.id in body
    assert "holiday.mov" in body
    assert f"http://vidq.test/job/{job.id}/output?" in body


@SQLITE_ONLY
async def test_failed_job_mail_names_the_error(db: Database, running: list[Notifier]) -> None:
    owner, _ = await create_owner(db, "alice")
    port = free_port()
    with smtp_server(port) as mailbox:
        job = await finished_job(db, owner.id, email="bob@example.org")
        _start(running, _settings(db, port), db)
        await _until(db, job.id, lambda r: r["status"] == "delivered")
    body = _parsed(mailbox.messages[0]).get_content()
    assert "could not be converted" in body
    assert "ffmpeg gave up" in body and "transcode_failed" in body
    assert "Download" not in body


@SQLITE_ONLY
async def test_smtp_down_is_retried_until_it_is_up(db: Database, running: list[Notifier]) -> None:
    owner, _ = await create_owner(db, "alice")
    port = free_port()  # nothing listens here yet
    job = await finished_job(db, owner.id, email="bob@example.org")
    _start(running, _settings(db, port, notify_retry_seconds="0,0.3,0.3,0.3,0.3,0.3"), db)
    row = await _until(db, job.id, lambda r: r["attempts"] >= 1 and r["last_error"])
    assert row["status"] == "pending"
    with smtp_server(port) as mailbox:
        row = await _until(db, job.id, lambda r: r["status"] == "delivered")
    assert row["attempts"] >= 2
    assert len(mailbox.messages) == 1
    assert mailbox.messages[0].rcpt_tos == ["bob@example.org"]


@SQLITE_ONLY
async def test_smtp_login_with_credentials_from_the_url(
    db: Database, running: list[Notifier]
) -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"p@ss:word")

    owner, _ = await create_owner(db, "alice")
    port = free_port()
    handler = MailHandler()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        job = await finished_job(db, owner.id, email="bob@example.org")
        url = f"smtp://mailer:p%40ss%3Aword@127.0.0.1:{port}"
        _start(running, _settings(db, port, smtp_url=url), db)
        await _until(db, job.id, lambda r: r["status"] == "delivered")
    finally:
        controller.stop()
    assert logins[-1] == (b"mailer", b"p@ss:word")
    assert len(handler.messages) == 1


def test_smtp_urls() -> None:
    assert SmtpServer.from_url("smtp://mail.example.org") == SmtpServer(
        "mail.example.org", 25, use_tls=False
    )
    assert SmtpServer.from_url("smtps://u:p%2Fw@mail.example.org") == SmtpServer(
        "mail.example.org", 465, use_tls=True, username="u", password="p/w"
    )
    assert SmtpServer.from_url("smtp://mail.example.org:587").port == 587
    for bad in ("http://mail.example.org", "smtp://", "smtp://host:notaport"):
        with pytest.raises(ValueError):
            SmtpServer.from_url(bad)


@SQLITE_ONLY
async def test_a_bad_smtp_url_stops_the_start(db: Database) -> None:
    with pytest.raises(ValueError, match="VIDQ_SMTP_URL"):
        Notifier(_settings(db, 25, smtp_url="imap://mail.example.org"), db)


async def test_submission_needs_smtp_and_a_valid_address(tmp_path: Path) -> None:
    without_smtp = Settings(data_dir=tmp_path)
    with pytest.raises(InvalidOption) as caught:
        await check_fields({"email": "bob@example.org"}, without_smtp)
    assert caught.value.errors == [
        {"field": "email", "message": "this server has no SMTP server configured"}
    ]
    with_smtp = Settings(data_dir=tmp_path, smtp_url="smtp://127.0.0.1:25")
    with pytest.raises(InvalidOption) as caught:
        await check_fields({"email": "not an address"}, with_smtp)
    assert caught.value.errors[0]["field"] == "email"
    submission = await check_fields({"email": "bob@example.org"}, with_smtp)
    assert submission.email == "bob@example.org"

"""Email notifications: a short plain-text message over SMTP, configured by one URL.

`VIDQ_SMTP_URL` is `smtp://[user:password@]host[:port]` (port 25, STARTTLS when the
server offers it) or `smtps://…` (port 465, TLS from the first byte).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib

from vidq.notify.outcome import AttemptOutcome, describe

SMTP_PORTS = {"smtp": 25, "smtps": 465}

HEADLINES = {
    "completed": "has been converted",
    "failed": "could not be converted",
    "cancelled": "was cancelled",
}


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to hand over mail."""

    hostname: str
    port: int
    use_tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """Parse `smtp://` or `smtps://` with optional credentials; ValueError if malformed."""
        parts = urlsplit(url)
        if parts.scheme not in SMTP_PORTS:
            raise ValueError("VIDQ_SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("VIDQ_SMTP_URL has no host")
        port = parts.port or SMTP_PORTS[parts.scheme]  # .port raises ValueError if bad
        return cls(
            hostname=parts.hostname,
            port=port,
            use_tls=parts.scheme == "smtps",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def compose(msg_id: str, payload: dict[str, Any], *, sender: str, recipient: str) -> EmailMessage:
    """The message telling `recipient` how a job ended; `payload` is the stored notification."""
    job: dict[str, Any] = payload.get("data", {})
    status = str(job.get("status", ""))
    filename = str((job.get("input") or {}).get("filename") or "your file")
    lines = [
        f'Your video "{filename}" {HEADLINES.get(status, "has finished")}.',
        "",
        f"Job:      {job.get('id')}",
        f"Status:   {status}",
    ]
    result = job.get("result") or {}
    if status == "completed" and result.get("download_url"):
        lines.append(f"Download: {result['download_url']}")
        if result.get("expires_at"):
            lines.append(f"(the link works until {result['expires_at']})")
    error = job.get("error") or {}
    if error:
        lines.append(f"Error:    {error.get('message') or error.get('code')}")
        if error.get("code"):
            lines.append(f"Code:     {error['code']}")
    lines += ["", "-- ", "vidq"]

    message = EmailMessage()
    message["From"] = sender
    message["To"] = Address(addr_spec=recipient)
    message["Subject"] = f"vidq: job {job.get('id')} {status}"
    message["Date"] = formatdate(usegmt=True)
    # The same Message-ID on every retry lets a mail system drop a duplicate.
    message["Message-ID"] = f"<{msg_id}@{_domain_of(sender)}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines) + "\n")
    return message


class EmailSender:
    """Sends notification emails through one SMTP server."""

    def __init__(self, server: SmtpServer, *, sender: str, timeout_seconds: float) -> None:
        self.server = server
        self.sender = sender
        self.timeout_seconds = timeout_seconds

    async def send(self, recipient: str, *, msg_id: str, payload: dict[str, Any]) -> AttemptOutcome:
        """One attempt to mail `recipient` about the job in `payload`; never raises for I/O."""
        message = compose(msg_id, payload, sender=self.sender, recipient=recipient)
        try:
            await aiosmtplib.send(
                message,
                hostname=self.server.hostname,
                port=self.server.port,
                username=self.server.username,
                password=self.server.password,
                use_tls=self.server.use_tls,
                start_tls=False if self.server.use_tls else None,
                timeout=self.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # A permanent (5xx) refusal of the address will not change on a retry.
            permanent = all(500 <= r.code < 600 for r in exc.recipients)
            return AttemptOutcome.failed(describe(exc), final=permanent)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return AttemptOutcome.failed(describe(exc))
        return AttemptOutcome.ok()

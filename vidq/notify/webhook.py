"""Standard Webhooks: sign the payload, POST it to the checked address, read the answer.

The body is serialised once and those exact bytes are both signed and sent. The headers
are `webhook-id` (the outbox row's id, the same on every retry), `webhook-timestamp`
(this attempt's Unix time) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256
of `{id}.{timestamp}.{body}` keyed with the owner's `whsec_` secret). Redirects are
never followed, proxies from the environment are never used, and every attempt
connects to the address `vidq.outbound.targets` approved for it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from vidq import __version__
from vidq.errors import TargetRefused, TargetUnresolved
from vidq.notify.outcome import AttemptOutcome, describe
from vidq.outbound.targets import AddressPolicy, resolve_target

SECRET_PREFIX = "whsec_"
USER_AGENT = f"vidq/{__version__} (webhooks)"
RETRY_AFTER_STATUSES = (429, 503)


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret: the decoded base64 part."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def serialize(payload: dict[str, Any]) -> bytes:
    """The body of a webhook: compact UTF-8 JSON, strict (a NaN raises, never goes out)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers (and content type) of one attempt."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (seconds or an HTTP date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _outcome_of(response: httpx.Response) -> AttemptOutcome:
    status = response.status_code
    if 200 <= status < 300:
        return AttemptOutcome.ok()
    if status == 410:
        return AttemptOutcome.failed("HTTP 410 Gone: the receiver asked for no more", final=True)
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        return AttemptOutcome.failed(f"HTTP {status}: redirects are not followed ({location})")
    retry_after = None
    if status in RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
    return AttemptOutcome.failed(f"HTTP {status}", retry_after_seconds=retry_after)


class WebhookSender:
    """Delivers signed webhooks. One per process; close it when done."""

    def __init__(self, *, timeout_seconds: float, policy: AddressPolicy) -> None:
        self.timeout_seconds = timeout_seconds
        self.policy = policy
        # No keep-alive: a pooled connection is keyed by address, and a TLS session made
        # for one host name must never carry a request meant for another on the same IP.
        self._client = httpx.AsyncClient(
            timeout=timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"user-agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def send(
        self, url: str, *, msg_id: str, payload: dict[str, Any], secret: str
    ) -> AttemptOutcome:
        """One delivery attempt of `payload` to `url`, within the timeout; never raises for I/O."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self._send(url, msg_id=msg_id, payload=payload, secret=secret)
        except TargetRefused as exc:
            return AttemptOutcome.failed(f"refused: {exc}", final=True)
        except TargetUnresolved as exc:
            return AttemptOutcome.failed(str(exc))
        except (TimeoutError, httpx.TimeoutException):
            return AttemptOutcome.failed(f"timed out after {self.timeout_seconds:g} s")
        except httpx.HTTPError as exc:
            return AttemptOutcome.failed(describe(exc))

    async def _send(
        self, url: str, *, msg_id: str, payload: dict[str, Any], secret: str
    ) -> AttemptOutcome:
        target = await resolve_target(url, self.policy)
        body = serialize(payload)
        headers = signed_headers(secret, msg_id, int(time.time()), body)
        headers["host"] = target.host_header
        request = self._client.build_request(
            "POST",
            target.pinned_url(),
            content=body,
            headers=headers,
            extensions={"sni_hostname": target.server_name},
        )
        response = await self._client.send(request, stream=True)
        try:
            return _outcome_of(response)
        finally:
            await response.aclose()  # the body is not needed: the status says it all

"""Where notifications may go: webhook URLs are checked before any request is made to them."""

from __future__ import annotations

from urllib.parse import urlsplit

from vidq.errors import InvalidOption


async def check_webhook_url(url: str, *, allow_private: bool) -> str:
    """The URL if it is an acceptable webhook target; InvalidOption otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidOption.field("webhook_url", "is not a valid URL") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidOption.field("webhook_url", "must be an http or https URL")
    if not parts.hostname:
        raise InvalidOption.field("webhook_url", "has no host")
    return url

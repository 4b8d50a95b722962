"""The service's clock: aware UTC datetimes, and the RFC 3339 form the API shows them in."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def rfc3339(moment: datetime | None) -> str | None:
    """`2026-11-26T20:16:35Z`, or None."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None

"""What the service's problem answers raise in the client."""

from __future__ import annotations

from typing import Any


class VidqAPIError(Exception):
    """The service answered with a problem (RFC 9457); `status`, `code` and `detail` say which."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        body: dict[str, Any],
        *,
        retry_after_seconds: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body
        self.retry_after_seconds = retry_after_seconds
        super().__init__(f"{status} {code}: {detail}")

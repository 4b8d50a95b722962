"""What one delivery attempt came to, whatever the channel."""

from __future__ import annotations

from dataclasses import dataclass

MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class AttemptOutcome:
    """The result of one attempt: delivered, or an error that is retried unless `final`."""

    delivered: bool
    error: str | None = None
    final: bool = False  # retrying cannot help (410 Gone, a refused address)
    retry_after_seconds: float | None = None  # the receiver asked us to wait this long

    @classmethod
    def ok(cls) -> AttemptOutcome:
        """A delivered message."""
        return cls(delivered=True)

    @classmethod
    def failed(
        cls, error: str, *, final: bool = False, retry_after_seconds: float | None = None
    ) -> AttemptOutcome:
        """A failed attempt, its error cut to a length fit for the Job document."""
        return cls(
            delivered=False,
            error=error[:MAX_ERROR_CHARS],
            final=final,
            retry_after_seconds=retry_after_seconds,
        )


def describe(exc: BaseException) -> str:
    """A one-line description of an exception, never empty."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

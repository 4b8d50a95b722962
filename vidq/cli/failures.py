"""What the client verbs end with: an exit status (EXIT_STATUSES, also in `vidq --help`),
and, on failure, one sentence saying what went wrong and what to change."""

from __future__ import annotations

import httpx

from vidq.client import VidqAPIError

DONE = 0
JOB_FAILED = 1
USAGE = 2
UNREACHABLE = 3
INTERRUPTED = 130

EXIT_STATUSES = """\
exit status:
  0    done
  1    a job failed or was cancelled, the service refused the file itself
       (not a video it can read, too large), or the output could not be saved
  2    usage: a wrong argument or option, a missing file or folder, an unknown job
  3    the service is unreachable or refused to work (API key refused, busy, its own error)
  130  interrupted (Ctrl-C)"""


class CommandFailed(Exception):
    """A client verb cannot go on: `message` is the one sentence a person sees, `exit_status`
    what a script sees. Not a VidqError: it is never an HTTP answer, only a command's end."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_status = exit_status


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "?", "!")) else text + "."


def api_failure(error: VidqAPIError, *, url: str, key_source: str) -> CommandFailed:
    """The service's problem answer as one sentence and the exit status for it."""
    if error.status == 401:
        return CommandFailed(
            f"The service at {url} refused the API key ({key_source}): "
            "pass another with --key or VIDQ_KEY.",
            UNREACHABLE,
        )
    detail = error.detail
    fields = error.body.get("errors")
    if error.status == 422 and isinstance(fields, list) and fields:
        detail = "; ".join(
            f"{item.get('field')}: {item.get('message')}"
            for item in fields
            if isinstance(item, dict)
        )
        detail = f"Invalid option — {detail}"
    if error.code in ("unsupported_media", "too_large"):
        return CommandFailed(_sentence(detail), JOB_FAILED)
    if error.status in (400, 404, 409, 410, 415, 422):
        return CommandFailed(_sentence(detail), USAGE)
    return CommandFailed(
        _sentence(f"The service at {url} answered {error.status}: {detail}"), UNREACHABLE
    )


def transport_failure(error: httpx.HTTPError, *, url: str, url_source: str) -> CommandFailed:
    """A connection that failed or broke, as one sentence naming the URL and how to change it."""
    if isinstance(error, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return CommandFailed(f"{url} is not an http:// or https:// URL ({url_source}).", USAGE)
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return CommandFailed(
            f"Cannot connect to {url} ({_reason(error)}; {url_source}): "
            "is `vidq serve` running? Set --url or VIDQ_URL.",
            UNREACHABLE,
        )
    if isinstance(error, httpx.TimeoutException):
        return CommandFailed(
            f"The service at {url} stopped answering ({url_source}; set --url or VIDQ_URL).",
            UNREACHABLE,
        )
    return CommandFailed(
        f"The connection to {url} broke ({_reason(error)}); try again.", UNREACHABLE
    )


def _reason(error: httpx.HTTPError) -> str:
    text = str(error).lower()
    if "refused" in text:
        return "connection refused"
    if isinstance(error, httpx.TimeoutException) or "timed out" in text:
        return "no answer in time"
    if (
        "name or service not known" in text
        or "nodename nor servname" in text
        or "resolution" in text
    ):
        return "unknown host name"
    return str(error).split("]")[-1].strip() or type(error).__name__

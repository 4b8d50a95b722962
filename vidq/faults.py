"""Transient faults: which errors pass if the same thing is tried again, and trying again.

A connection refused or reset, a timeout, a 5xx or `SlowDown` answer from the bucket, a
database connection cut (PostgreSQL restarting, a failover): such an error says nothing
about the job, only about the moment. `is_transient` names them, in this one place, for
every caller: the bucket's calls, the worker's database writes, the API's answer (503
rather than 500). `retry_transient` runs an operation again with a growing pause until it
succeeds or the fault has lasted `budget_seconds` (`VIDQ_TRANSIENT_RETRY_SECONDS`); then
it raises `StorageUnavailable`, which fails a job with `storage_unavailable`.

Libraries are looked at only if the process has loaded them (boto3 is loaded only when a
bucket is used), so classifying an error never imports one.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from vidq.errors import StorageUnavailable, VidqError

log = logging.getLogger("vidq.faults")

T = TypeVar("T")

# The first pause between tries, and the longest.
FIRST_PAUSE_SECONDS = 0.25
MAX_PAUSE_SECONDS = 5.0

_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EPIPE,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
    }
)
# S3 error codes that mean "not now" rather than "not this".
_S3_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
    }
)
# PostgreSQL SQLSTATEs of a server going away or refusing for now: class 08 (connection
# exception), shutdown and start-up, too many connections, and a lost race to retry.
_PG_TRANSIENT_STATES = frozenset({"57P01", "57P02", "57P03", "53300", "40001", "40P01"})
# urllib3 errors that s3transfer retries itself and may hand on once it gives up.
_URLLIB3_TRANSIENT = frozenset(
    {"ProtocolError", "ReadTimeoutError", "ConnectTimeoutError", "NewConnectionError"}
)


def _links(exc: BaseException) -> Iterator[BaseException]:
    """The error and those behind it: its cause, its context, a wrapped driver error, the
    last error of a transfer that gave up."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        link = pending.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        for behind in (
            link.__cause__,
            link.__context__,
            getattr(link, "orig", None),  # SQLAlchemy's DBAPIError
            getattr(link, "last_exception", None),  # s3transfer/boto3 RetriesExceededError
        ):
            if isinstance(behind, BaseException):
                pending.append(behind)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` (or an error behind it) is a fault that may pass if tried again.

    A vidq error is a decision already taken (a full store, a budget run out): never.
    """
    for link in _links(exc):
        if isinstance(link, VidqError):
            return False
        if _transient(link):
            return True
    return False


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):
        return True  # refused, reset, aborted, broken pipe; a socket timeout
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    module = type(exc).__module__
    if module.startswith("botocore"):
        return _botocore_transient(exc)
    if module.startswith("urllib3"):
        return type(exc).__name__ in _URLLIB3_TRANSIENT
    if module.startswith("sqlalchemy"):
        return _sqlalchemy_transient(exc)
    if module.startswith("psycopg"):
        return _psycopg_transient(exc)
    if module.startswith("sqlite3"):
        text = str(exc).lower()
        return "locked" in text or "busy" in text
    if module.startswith("httpx"):
        httpx = sys.modules.get("httpx")
        return httpx is not None and isinstance(exc, httpx.TransportError)
    return False


def _botocore_transient(exc: BaseException) -> bool:
    errors = sys.modules.get("botocore.exceptions")
    if errors is None:
        return False
    if isinstance(exc, errors.ClientError):
        response: dict[str, Any] = exc.response
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        code = str(response.get("Error", {}).get("Code", ""))
        # 501 Not Implemented is an answer, not an outage; 507 is a full store (StorageFull).
        return (status >= 500 and status not in (501, 507)) or code in _S3_TRANSIENT_CODES
    # EndpointConnectionError, ConnectTimeoutError (ConnectionError); ConnectionClosedError,
    # ReadTimeoutError, ResponseStreamingError (HTTPClientError); a body cut short.
    return isinstance(
        exc, errors.ConnectionError | errors.HTTPClientError | errors.IncompleteReadError
    )


def _sqlalchemy_transient(exc: BaseException) -> bool:
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is None:
        return False
    if isinstance(exc, errors.DBAPIError) and exc.connection_invalidated:
        return True
    # The pool found no connection in time: the server is slow or away. The driver's
    # own error (`orig`) is judged by `is_transient` as the next link.
    return isinstance(exc, errors.TimeoutError)


def _psycopg_transient(exc: BaseException) -> bool:
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return False
    state = getattr(exc, "sqlstate", None) or ""
    if state.startswith("08") or state in _PG_TRANSIENT_STATES:
        return True
    # No SQLSTATE: the connection failed or was closed under the driver.
    return not state and isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def describe(exc: BaseException) -> str:
    """A one-line description of an error: its type and, if any, its message."""
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    budget_seconds: float,
    what: str,
) -> T:
    """`await operation()`, tried again while it fails with a transient fault, with a pause
    that doubles (with jitter) up to `MAX_PAUSE_SECONDS`, until the fault has lasted
    `budget_seconds`; then StorageUnavailable, naming `what` (e.g. "the bucket").

    Any other error is raised at once. The operation must be safe to run twice.
    """
    first_failure: float | None = None
    pause = FIRST_PAUSE_SECONDS
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_transient(exc):
                raise
            now = time.monotonic()
            if first_failure is None:
                first_failure = now
            lasted = now - first_failure
            if lasted >= budget_seconds:
                raise StorageUnavailable(
                    f"{what[:1].upper()}{what[1:]} stayed unreachable for more than "
                    f"{budget_seconds:g} s (VIDQ_TRANSIENT_RETRY_SECONDS): {describe(exc).rstrip('.')}."
                ) from exc
            log.warning(
                "%s did not answer (%s); trying again (fault lasted %.1f s of %g s allowed)",
                what,
                describe(exc),
                lasted,
                budget_seconds,
            )
            sleep = min(pause * random.uniform(0.8, 1.2), budget_seconds - lasted)
            await asyncio.sleep(max(0.0, sleep))
            pause = min(MAX_PAUSE_SECONDS, pause * 2)

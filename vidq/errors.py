"""The one exception tree of vidq. Each leaf names what went wrong and maps to one HTTP answer.

VidqError                          500 internal_error (the base; never raised itself)
├── BadRequest                     400 bad_request
├── Unauthorized                   401 unauthorized               + WWW-Authenticate: Bearer
├── NotFound                       404 not_found
├── RequestTimeout                 408 request_timeout            + Connection: close
├── Conflict                       409 conflict
├── Gone                           410 gone
├── UploadTooLarge                 413 too_large
├── UnsupportedContentType         415 unsupported_content_type
├── RangeNotSatisfiable            416 range_not_satisfiable      + Content-Range: bytes */<size>
├── PreconditionFailed             412 precondition_failed        + Tus-Version (tus: an unsupported Tus-Resumable)
├── InvalidOption                  422 invalid_option             + `errors` in the body
├── IdempotencyMismatch            422 idempotency_key_reused
├── UnsupportedMedia               422 unsupported_media
├── InvalidSource                  422 invalid_source
├── ChecksumMismatch               460 checksum_mismatch          (tus: a chunk's Upload-Checksum does not match)
├── TooManyJobs                    429 too_many_jobs              + Retry-After
├── RateLimited                    429 rate_limited               + Retry-After
├── StorageFull                    507 storage_full
├── ServiceUnavailable             503 unavailable                (a branch)
│   ├── DatabaseReplaced           503 unavailable
│   └── StorageUnavailable         503 storage_unavailable        + Retry-After
├── Busy                           503 busy                       + Retry-After, Connection: close
└── TargetError                    422 target_error               (a branch; not an HTTP answer)
    ├── TargetRefused              422 target_refused
    └── TargetUnresolved           422 target_unresolved

The problem+json handler (vidq/api/problems.py) turns any of them into its answer: the
leaf's status, code and title, `headers()` as headers and `members()` in the body. The
code of a framework error (a Starlette HTTPException) comes from the leaf for its status.

TargetError is raised while an outbound URL (a webhook, a `source_url`, a redirect of an
import) is checked (vidq.outbound.targets), and is never answered as such: at submission
it becomes `422 invalid_option` on the field `webhook_url` (vidq.jobs.fields) or `422
invalid_source` for a `source_url`; at delivery it is a failed attempt, final for
TargetRefused and retried for TargetUnresolved; during an import it fails the job with
`import_failed`. Its status and codes only say what it would answer if one ever reached
the HTTP layer unconverted: the URL is unusable.

StorageUnavailable is raised once a transient fault of the database or the bucket (a
connection refused or reset, a timeout, a 5xx) has outlasted VIDQ_TRANSIENT_RETRY_SECONDS
of retries (vidq.faults): a request then answers 503, a job fails with the same code.

DatabaseReplaced is raised by the database layer (vidq.db.database) on every read and
write once the database is not the one the process opened: its SQLite file was removed
or replaced, or its `database_id` changed. Nothing is written to the wrong database; the
process answers 503 (and /readyz says why) until it is restarted.
"""

from __future__ import annotations

from typing import Any, ClassVar


class VidqError(Exception):
    """Something went wrong in vidq."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or (self.__doc__ or self.title).strip()
        self.extra = extra
        super().__init__(self.detail)

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the problem body."""
        return {}

    def members(self) -> dict[str, Any]:
        """Members the problem body carries besides type, title, status, detail and code."""
        return dict(self.extra)


def leaves(root: type[VidqError] = VidqError) -> list[type[VidqError]]:
    """Every error class under `root` that has no subclass of its own, in declaration order."""
    found: list[type[VidqError]] = []
    for sub in root.__subclasses__():
        found.extend(leaves(sub) or [sub])
    return found


class BadRequest(VidqError):
    """The request is malformed."""

    status, code, title = 400, "bad_request", "Bad request"


class Unauthorized(VidqError):
    """A valid API key is needed: send `Authorization: Bearer <api-key>`."""

    status, code, title = 401, "unauthorized", "Unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class NotFound(VidqError):
    """No such resource."""

    status, code, title = 404, "not_found", "Not found"


class RequestTimeout(VidqError):
    """The client paused too long while sending its request; nothing of it is kept."""

    status, code, title = 408, "request_timeout", "Request timeout"

    def headers(self) -> dict[str, str]:
        # The rest of the body may still come: the connection cannot carry another request.
        return {"Connection": "close"}


class Conflict(VidqError):
    """The request conflicts with the resource's current state."""

    status, code, title = 409, "conflict", "Conflict"


class Gone(VidqError):
    """The resource has expired."""

    status, code, title = 410, "gone", "Gone"


class UploadTooLarge(VidqError):
    """The upload is larger than this server accepts."""

    status, code, title = 413, "too_large", "Upload too large"


class UnsupportedContentType(VidqError):
    """Send multipart/form-data with a `file` part, a raw video/*, audio/* or application/octet-stream body, or application/json naming the input."""

    status, code, title = 415, "unsupported_content_type", "Unsupported content type"


class RangeNotSatisfiable(VidqError):
    """The requested byte range lies outside the file."""

    status, code, title = 416, "range_not_satisfiable", "Range not satisfiable"

    def __init__(self, detail: str | None = None, *, size: int) -> None:
        self.size = size
        super().__init__(detail)

    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}"}


class PreconditionFailed(VidqError):
    """This server speaks tus 1.0.0: send `Tus-Resumable: 1.0.0`."""

    status, code, title = 412, "precondition_failed", "Precondition failed"

    def headers(self) -> dict[str, str]:
        return {"Tus-Version": "1.0.0"}


class InvalidOption(VidqError):
    """An option is invalid."""

    status, code, title = 422, "invalid_option", "Invalid option"

    def __init__(
        self, detail: str | None = None, errors: list[dict[str, str]] | None = None
    ) -> None:
        self.errors = errors or []
        if detail is None and self.errors:
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in self.errors)
        super().__init__(detail)

    @classmethod
    def field(cls, field: str, message: str) -> InvalidOption:
        """One invalid field."""
        return cls(errors=[{"field": field, "message": message}])

    def members(self) -> dict[str, Any]:
        return {**self.extra, "errors": self.errors}


class IdempotencyMismatch(VidqError):
    """This Idempotency-Key was already used with a different request."""

    status, code, title = 422, "idempotency_key_reused", "Idempotency key reused"


class UnsupportedMedia(VidqError):
    """The upload is not a decodable video or audio file."""

    status, code, title = 422, "unsupported_media", "Unsupported media"


class InvalidSource(VidqError):
    """The input named (a `source_url` or an `upload_id`) cannot be used."""

    status, code, title = 422, "invalid_source", "Invalid source"


class ChecksumMismatch(VidqError):
    """The chunk's Upload-Checksum does not match its bytes; nothing of it was kept."""

    status, code, title = 460, "checksum_mismatch", "Checksum mismatch"


class TooManyJobs(VidqError):
    """You already have the maximum number of unfinished jobs."""

    status, code, title = 429, "too_many_jobs", "Too many jobs"

    def __init__(self, detail: str | None = None, *, retry_after: int = 30) -> None:
        self.retry_after = retry_after
        super().__init__(detail)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RateLimited(VidqError):
    """This API key sent more requests than its rate limit allows."""

    status, code, title = 429, "rate_limited", "Rate limited"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(detail)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class StorageFull(VidqError):
    """Storage cannot take the upload."""

    status, code, title = 507, "storage_full", "Storage full"


class ServiceUnavailable(VidqError):
    """The service cannot answer right now."""

    status, code, title = 503, "unavailable", "Service unavailable"


class DatabaseReplaced(ServiceUnavailable):
    """The database this process opened is gone or was replaced; vidq must be restarted."""


class StorageUnavailable(ServiceUnavailable):
    """The database or the bucket did not answer, though tried again for a while; try again later."""

    code, title = "storage_unavailable", "Storage unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 10) -> None:
        self.retry_after = retry_after
        super().__init__(detail)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Busy(VidqError):
    """The server is at its limit of connections or uploads; nothing of this request is kept."""

    status, code, title = 503, "busy", "Busy"

    def __init__(self, detail: str | None = None, *, retry_after: int = 5) -> None:
        self.retry_after = retry_after
        super().__init__(detail)

    def headers(self) -> dict[str, str]:
        # Answered before the body is read: close rather than read an upload only to drop it.
        return {"Retry-After": str(self.retry_after), "Connection": "close"}


class TargetError(VidqError):
    """The URL cannot be reached (see the module docstring: not an HTTP answer)."""

    status, code, title = 422, "target_error", "Unusable URL"


class TargetRefused(TargetError):
    """The URL may never be requested (scheme, address); retrying cannot help."""

    code, title = "target_refused", "URL refused"


class TargetUnresolved(TargetError):
    """The URL's host did not resolve now; it may later."""

    code, title = "target_unresolved", "Host unresolved"

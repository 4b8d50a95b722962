"""The one exception tree of vidq. Each leaf names what went wrong and maps to one HTTP answer.

VidqError
├── BadRequest            400 bad_request
├── Unauthorized          401 unauthorized
├── NotFound              404 not_found
├── Conflict              409 conflict
├── Gone                  410 gone
├── UploadTooLarge        413 too_large
├── UnsupportedContentType 415 unsupported_content_type
├── InvalidOption         422 invalid_option
├── IdempotencyMismatch   422 idempotency_key_reused
├── UnsupportedMedia      422 unsupported_media
├── TooManyJobs           429 too_many_jobs
├── StorageFull           507 storage_full
└── ServiceUnavailable    503 unavailable
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


class BadRequest(VidqError):
    """The request is malformed."""

    status, code, title = 400, "bad_request", "Bad request"


class Unauthorized(VidqError):
    """A valid API key is needed: send `Authorization: Bearer <api-key>`."""

    status, code, title = 401, "unauthorized", "Unauthorized"


class NotFound(VidqError):
    """No such resource."""

    status, code, title = 404, "not_found", "Not found"


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
    """Send multipart/form-data with a `file` part, or a raw video/*, audio/* or application/octet-stream body."""

    status, code, title = 415, "unsupported_content_type", "Unsupported content type"


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


class IdempotencyMismatch(VidqError):
    """This Idempotency-Key was already used with a different request."""

    status, code, title = 422, "idempotency_key_reused", "Idempotency key reused"


class UnsupportedMedia(VidqError):
    """The upload is not a decodable video or audio file."""

    status, code, title = 422, "unsupported_media", "Unsupported media"


class TooManyJobs(VidqError):
    """You already have the maximum number of unfinished jobs."""

    status, code, title = 429, "too_many_jobs", "Too many jobs"


class StorageFull(VidqError):
    """Storage cannot take the upload."""

    status, code, title = 507, "storage_full", "Storage full"


class ServiceUnavailable(VidqError):
    """The service cannot answer right now."""

    status, code, title = 503, "unavailable", "Service unavailable"

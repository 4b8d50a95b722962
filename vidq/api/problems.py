"""One error shape for every answer that is not a success: RFC 9457 problem+json."""

from __future__ import annotations

import logging
from collections import defaultdict
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from vidq.api.early_answers import answer_early
from vidq.errors import Busy, InvalidOption, ServiceUnavailable, TooManyJobs, VidqError, leaves
from vidq.faults import describe, is_transient

log = logging.getLogger("vidq.api")

PROBLEM_TYPE_BASE = "https://vidq.dev/problems/"
MEDIA_TYPE = "application/problem+json"
# A transient fault of the database or storage is answered 503 with this Retry-After.
TRANSIENT_RETRY_AFTER_SECONDS = 5

# Framework answers no leaf of the error tree stands for, and the one code a framework
# answer takes where several leaves share its status (a 422 is a validation error).
_FRAMEWORK_CODES = {
    405: "method_not_allowed",
    406: "not_acceptable",
    422: InvalidOption.code,
    429: TooManyJobs.code,
    503: ServiceUnavailable.code,
}


def _codes_by_status() -> dict[int, str]:
    """The code of a framework HTTPException's answer, by status: the error tree's leaf
    for that status, or `_FRAMEWORK_CODES`."""
    codes: defaultdict[int, set[str]] = defaultdict(set)
    for leaf in leaves():
        codes[leaf.status].add(leaf.code)
    derived = {status: found.pop() for status, found in codes.items() if len(found) == 1}
    return {**derived, **_FRAMEWORK_CODES}


_CODES_BY_STATUS = _codes_by_status()
# Titles of the statuses HTTP does not name (tus's 460), from the leaf that answers them.
_TITLES_BY_STATUS = {leaf.status: leaf.title for leaf in leaves()}


def _phrase(status: int) -> str:
    """The reason phrase of a status: HTTP's own, else the title of the leaf that answers it."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _TITLES_BY_STATUS.get(status, "Error")


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json answer."""
    body = problem_document(status, code, detail, title=title, **extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def problem_document(
    status: int, code: str, detail: str, *, title: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The RFC 9457 body of a problem+json answer."""
    return {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


async def _vidq_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VidqError)
    if isinstance(exc, Busy):  # a limit doing its work, not a fault; may come in floods
        log.info("%s: %s", exc.code, exc.detail)
    elif exc.status >= 500:
        log.error("%s: %s", exc.code, exc.detail)
    return answer_early(
        request,
        problem(
            exc.status,
            exc.code,
            exc.detail,
            title=exc.title,
            headers=exc.headers(),
            **exc.members(),
        ),
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES_BY_STATUS.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No such resource."
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and "Allow" in headers:  # a route's 405, not a static file's
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return answer_early(request, problem(exc.status_code, code, detail, headers=headers))


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path.

    Starlette's 405 names only the methods of the first route with that path, but a path
    may have several (GET and DELETE /job/{id}); RFC 9110 wants all of them in `Allow`.
    """
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": _field_name(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return answer_early(
        request, problem(422, "invalid_option", detail, title="Invalid option", errors=errors)
    )


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    if is_transient(exc):  # the database or the bucket away for a moment: not a bug
        log.warning("the database or storage did not answer: %s", describe(exc))
        return problem(
            503,
            ServiceUnavailable.code,
            "The database or storage did not answer for a moment; try again shortly.",
            headers={"Retry-After": str(TRANSIENT_RETRY_AFTER_SECONDS)},
        )
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal_error", "An unexpected error occurred; it has been logged.")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database error: 503 if it may pass, else the 500 of any unexpected error. Handled
    here rather than as any Exception, which the server would log a second time."""
    return await _unexpected_error(request, exc)


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error, ours or the framework's, through problem+json."""
    app.add_exception_handler(VidqError, _vidq_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)

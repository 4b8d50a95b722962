"""`GET /job/{id}` answered before routing: status polls at the framework's own speed.

A plain poll (no query, `Authorization: Bearer <key>`, optionally `If-None-Match`) is
answered here from `vidq.jobs.polls`, skipping the router, the dependency solving and
the response classes: the same status, body, `ETag` and `Retry-After` the route
`routes_jobs.get_job` sends. Anything else (`?wait=N`, no key, an unknown key or job, a
key over its rate, a key whose use is due to be noted) goes on to that route, which
answers it, or its error, the usual way: this is a shortcut, never a second contract.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from vidq.api.http import etag_matches
from vidq.api.ratelimit import RateLimiter
from vidq.api.routes_jobs import RETRY_AFTER_SECONDS
from vidq.jobs.polls import Polls
from vidq.jobs.runtime import Runtime
from vidq.jobs.strict import is_job_id

PREFIX = "/job/"
MAX_BASE_URLS = 256
# What the route sends while a job is on its way.
RETRY_AFTER = {status: str(s).encode() for status, s in RETRY_AFTER_SECONDS.items()}


def _read_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None, bytes]:
    """The bearer credentials (as FastAPI's HTTPBearer reads them), If-None-Match and Host."""
    authorization = if_none_match = None
    host = b""
    for name, value in headers:
        if name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name == b"if-none-match" and if_none_match is None:
            if_none_match = value.decode("latin-1")
        elif name == b"host" and not host:
            host = value
    if authorization is None:
        return None, if_none_match, host
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return None, if_none_match, host
    return credentials, if_none_match, host


class FastPolls:
    """Answers plain `GET /job/{id}` itself; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Base URLs of answers by what they are made of (scheme, Host, root path, server).
        self._base_urls: dict[tuple[object, ...], str] = {}

    def _base_url(self, scope: Scope, runtime: Runtime, host: bytes) -> str:
        """`runtime.base_url_for(request.base_url)`, without building a URL each time."""
        if runtime.settings.public_url:
            return runtime.base_url_for("")
        key = (scope["scheme"], host, scope.get("root_path", ""), scope.get("server"))
        found = self._base_urls.get(key)
        if found is None:
            if len(self._base_urls) >= MAX_BASE_URLS:  # Host is the client's to choose
                self._base_urls.clear()
            found = runtime.base_url_for(str(Request(scope).base_url))
            self._base_urls[key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["query_string"]
            or not await self._answered(scope, send)
        ):
            await self.app(scope, receive, send)

    async def _answered(self, scope: Scope, send: Send) -> bool:
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        if not path.startswith(PREFIX) or not is_job_id(job_id := path[len(PREFIX) :]):
            return False
        key, if_none_match, host = _read_headers(scope["headers"])
        if key is None:
            return False
        state = scope["app"].state
        runtime: Runtime | None = getattr(state, "runtime", None)
        polls: Polls | None = getattr(state, "polls", None)
        if runtime is None or polls is None or runtime.settings.fair_share:
            return False  # fair share's queue place is an estimate the route makes
        base_url = self._base_url(scope, runtime, host)
        try:
            polled = await polls.answer(key, job_id, base_url=base_url)
        except Exception:  # the database replaced, …: the route meets it too, and says so
            return False
        if polled is None:
            return False
        limiter: RateLimiter = state.rate_limiter
        if limiter.try_take(polled.key_hash) is not None:
            return False  # the route counts it again and answers 429
        answer = polled.answer
        headers = [(b"etag", answer.etag.encode())]
        if (retry_after := RETRY_AFTER.get(answer.status)) is not None:
            headers.append((b"retry-after", retry_after))
        if etag_matches(if_none_match, answer.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        headers += [
            (b"content-length", str(len(answer.body)).encode()),
            (b"content-type", b"application/json"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        return True

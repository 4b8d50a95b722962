"""Who is asking: `Authorization: Bearer <api-key>` resolved to its owner, and counted
against the key's rate limit."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vidq.api.ratelimit import RateLimiter
from vidq.errors import Unauthorized
from vidq.jobs.accounts import Account, account_for_key, hash_key
from vidq.jobs.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="An API key made by `vidq keys create NAME`.")


def runtime_of(request: Request) -> Runtime:
    """The process's Runtime, opened in the app's lifespan."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def optional_account(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Account | None:
    """The caller's account, or None when no key was sent; 429 when the key is over its rate."""
    if credentials is None:
        return None
    account = await account_for_key(runtime_of(request).db, credentials.credentials)
    if account is None:
        raise Unauthorized("Unknown API key.")
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.take(hash_key(credentials.credentials))
    return account


async def current_account(
    account: Annotated[Account | None, Depends(optional_account)],
) -> Account:
    """The caller's account; 401 without a valid key."""
    if account is None:
        raise Unauthorized()
    return account


CurrentAccount = Annotated[Account, Depends(current_account)]
OptionalAccount = Annotated[Account | None, Depends(optional_account)]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


async def metrics_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Who may read /metrics: the operator's VIDQ_METRICS_TOKEN if one is set, else any owner."""
    token = runtime_of(request).settings.metrics_token
    if token is None:
        await current_account(await optional_account(request, credentials))
        return
    offered = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(offered.encode(), token.encode()):
        raise Unauthorized("GET /metrics needs the operator's metrics token.")


MetricsReader = Depends(metrics_reader)

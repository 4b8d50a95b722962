"""The HTTP server vidq runs: uvicorn configured from the settings, in one place for the
`vidq serve`/`vidq api` commands and for the tests' live servers."""

from __future__ import annotations

import logging

import uvicorn

from vidq.api.app import create_app
from vidq.api.connections import ConnectionLimits, protocol_for
from vidq.config import Settings

log = logging.getLogger("vidq")


def http_server(settings: Settings, *, run_workers: bool) -> uvicorn.Server:
    """A uvicorn server for the vidq app, within the limits of the settings."""
    app = create_app(settings, run_workers=run_workers)
    limits: ConnectionLimits = app.state.limits
    log_exposure(settings, limits)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        timeout_graceful_shutdown=2,
        http=protocol_for(limits),
        backlog=limits.backlog,
        proxy_headers=True,
    )
    return uvicorn.Server(config)


def log_exposure(settings: Settings, limits: ConnectionLimits) -> None:
    """Say at start what clients may hold, and warn if the open files may not suffice."""
    log.info(
        "open-file limit %d: at most %d connections and %d uploads at once",
        limits.open_files,
        limits.max_connections,
        limits.max_concurrent_uploads,
    )
    if problem := limits.over_budget():
        log.warning("%s", problem)

"""The HTTP server vidq runs: uvicorn configured from the settings, in one place for the
`vidq serve`/`vidq api` commands and for the tests' live servers."""

from __future__ import annotations

import ipaddress
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
        # X-Forwarded-For/-Proto only from the proxies named; uvicorn never reads -Host.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )
    return uvicorn.Server(config)


def is_loopback(host: str) -> bool:
    """Whether listening on `host` reaches only this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve to anything
        return False


def log_exposure(settings: Settings, limits: ConnectionLimits) -> None:
    """Say at start what clients may hold, and warn about what the settings leave open."""
    log.info(
        "open-file limit %d: at most %d connections and %d uploads at once",
        limits.open_files,
        limits.max_connections,
        limits.max_concurrent_uploads,
    )
    if problem := limits.over_budget():
        log.warning("%s", problem)
    if not settings.public_url and not is_loopback(settings.host):
        log.warning(
            "listening on %s without VIDQ_PUBLIC_URL: links in answers (download_url) take "
            "their host from each request's Host header; set VIDQ_PUBLIC_URL to the address "
            "clients use",
            settings.host,
        )

"""Prometheus metrics on a port of their own (VIDQ_METRICS_PORT), for any vidq process.

A `vidq worker` has no API, yet an autoscaler needs its numbers: the queue's depth and the
age of its oldest job, the conversions running here and the slots there are. This serves
`metrics.REGISTRY` with prometheus_client's WSGI app in a thread, without a key (bind it
to an address only the scraper reaches). The gauges of the whole queue are read from the
database at each scrape, on the process's event loop, as the API's `/metrics` does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from vidq import metrics

log = logging.getLogger("vidq")

# A scrape waits this long for the database's figures, then answers with the last ones.
REFRESH_TIMEOUT_SECONDS = 5.0


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not news


class MetricsExporter:
    """`GET /metrics` on host:port in a thread; `refresh` runs on `loop` before each scrape."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        refresh: Callable[[], Awaitable[None]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._refresh = refresh
        self._loop = loop
        self._metrics_app = make_wsgi_app(metrics.REGISTRY)
        self._server = make_server(
            host, port, self._app, server_class=_Server, handler_class=_QuietHandler
        )
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-exporter", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        log.info("metrics on port %d (/metrics)", self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") in ("/", "/metrics"):
            future = asyncio.run_coroutine_threadsafe(self._refreshed(), self._loop)
            try:
                future.result(REFRESH_TIMEOUT_SECONDS)
            except Exception as exc:
                future.cancel()
                log.warning("metrics: the queue's figures could not be read now (%r)", exc)
        return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]

    async def _refreshed(self) -> None:
        await self._refresh()

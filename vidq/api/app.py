"""The application factory: routes, error handlers, and the lifespan that runs the background loops."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from vidq import __version__
from vidq.api import (
    routes_events,
    routes_files,
    routes_jobs,
    routes_output,
    routes_service,
    routes_tus,
)
from vidq.api.connections import ConnectionLimits
from vidq.api.early_answers import DrainLimits
from vidq.api.fast_polls import FastPolls
from vidq.api.problems import install_problem_handlers
from vidq.api.ratelimit import RateLimiter
from vidq.api.schemas import problem_responses
from vidq.api.uploads import UploadSlots
from vidq.config import Settings
from vidq.jobs.polls import Polls
from vidq.logs import install_redaction
from vidq.service import running_service

log = logging.getLogger("vidq")

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"
# Swagger UI, served by vidq itself (`make vendor-docs`): /docs loads nothing from elsewhere.
SWAGGER_UI = "/static/vendor/swagger-ui"

DESCRIPTION = """Convert video files through a REST API built for long-running work.

POST a video to `/convert` and get `202 Accepted` with a job id at once; follow the job at
`/job/{id}`; download the result from its `download_url`. Every endpoint but health, the web
page and the docs needs `Authorization: Bearer <api-key>`. Errors are `application/problem+json`.
"""


def create_app(settings: Settings, *, run_workers: bool = True) -> FastAPI:
    """The vidq ASGI app; with `run_workers`, conversions run in this process too."""
    install_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_service(
            settings, workers=settings.workers if run_workers else 0, notify=run_workers
        ) as service:
            app.state.service = service
            app.state.runtime = service.runtime
            app.state.polls = polls = Polls(service.runtime.db, service.runtime.signing_key)
            try:
                yield
            finally:
                await polls.close()

    app = FastAPI(
        title="vidq",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=lambda route: route.name,
    )
    install_problem_handlers(app)
    # What clients may hold; the connection limits also go to the server (vidq.api.serving).
    app.state.limits = limits = ConnectionLimits.for_settings(settings)
    app.state.upload_slots = UploadSlots(
        limits.max_concurrent_uploads, retry_after_seconds=limits.retry_after_seconds
    )
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app.state.drain_limits = DrainLimits(
        settings.refused_upload_drain_seconds, settings.refused_upload_drain_bytes
    )
    # Every job route takes parameters, and a bad one is answered with a problem (not
    # FastAPI's default validation body, which it would otherwise document).
    app.include_router(routes_jobs.router, responses=problem_responses(422))
    app.include_router(routes_output.router, responses=problem_responses(422))
    app.include_router(routes_files.router, responses=problem_responses(422))
    app.include_router(routes_events.router, responses=problem_responses(422))
    app.include_router(routes_tus.router)
    app.add_middleware(routes_tus.TusResumableHeader)
    app.add_middleware(FastPolls)
    app.include_router(routes_service.router)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
            # No "valid" badge: it would send the document to a validator on the internet.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app

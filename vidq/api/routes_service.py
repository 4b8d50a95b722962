"""Routes about the service itself: presets, account, health and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vidq import metrics
from vidq.api.auth import CurrentAccount, MetricsReader, RuntimeDep
from vidq.api.schemas import AccountModel, Health, PresetList, problem_responses
from vidq.jobs import service
from vidq.jobs.presets import PRESETS
from vidq.service import Service

router = APIRouter()


@router.get(
    "/presets",
    response_model=PresetList,
    responses=problem_responses(401, 429),
    summary="List presets",
)
async def list_presets(account: CurrentAccount) -> dict[str, Any]:
    """The named sets of options a conversion can start from."""
    return {
        "presets": [
            {"name": p.name, "description": p.description, "options": p.options}
            for p in PRESETS.values()
        ]
    }


@router.get(
    "/account",
    response_model=AccountModel,
    responses=problem_responses(401, 429),
    summary="Your account",
)
async def get_account(account: CurrentAccount) -> dict[str, str]:
    """Your name and the secret that signs your webhooks."""
    return {"name": account.name, "webhook_secret": account.webhook_secret}


@router.get("/healthz", response_model=Health, response_model_exclude_none=True, summary="Liveness")
async def healthz() -> dict[str, str]:
    """200 while the process runs."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Health,
    responses={
        503: {
            "model": Health,
            "description": "The database or storage does not answer, the database is not the one the process opened, or no worker runs",
        }
    },
    summary="Readiness",
)
async def readyz(request: Request) -> Response:
    """200 when the database and storage answer, the database is still the one the process
    opened (its file and its `database_id`), and, where workers should run, one does; else
    503 with the reason in `detail`."""
    service: Service = request.app.state.service
    reason = await service.unready_reason()
    if reason is not None:
        return JSONResponse({"status": "unavailable", "detail": reason}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text"},
        **problem_responses(401, 429),
    },
    summary="Prometheus metrics",
)
async def get_metrics(runtime: RuntimeDep, _: None = MetricsReader) -> Response:
    """Service-wide totals: jobs by status, queue depth and the age of the oldest queued job,
    processing time, uploads and notification deliveries. For the operator's
    VIDQ_METRICS_TOKEN when set, else any key."""
    await service.refresh_queue_metrics(runtime)
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

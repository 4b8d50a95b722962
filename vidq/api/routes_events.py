"""Live updates as Server-Sent Events: GET /job/{id}/events and GET /jobs/events.

The events come from the process's live feeds (`vidq.jobs.feeds`), never from a query per
client. Each is `event: job`, `id:` the Job's ETag (as GET /job/{id} sends it), `data:` the
Job as JSON on one line; a job deleted while followed is `event: deleted` with `data:
{"id": …}`. An idle stream carries a `: keep-alive` comment every
VIDQ_EVENTS_KEEPALIVE_SECONDS (15 s at most).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from vidq.api.auth import CurrentAccount, RuntimeDep
from vidq.api.params import JobId
from vidq.api.schemas import problem_responses
from vidq.jobs import service
from vidq.jobs.runtime import Runtime
from vidq.jobs.subscriptions import FeedEvent, Subscription

router = APIRouter()

EVENT_STREAM = "text/event-stream"
# Each event, as OpenAPI 3.2 describes Server-Sent Events (`itemSchema`).
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["job", "deleted"]},
        "id": {"type": "string", "description": "`job`: the Job's ETag, as GET /job/{id} sends it"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/JobModel"},
                    {
                        "type": "object",
                        "description": "`deleted`: the id of the job deleted",
                        "required": ["id"],
                        "properties": {"id": {"type": "string"}},
                        "additionalProperties": False,
                    },
                ]
            },
        },
    },
}
STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "Server-Sent Events: `event: job` with `id:` the Job's ETag and `data:` the Job"
            ' as JSON; `event: deleted` with `data: {"id": …}` when a followed job is'
            " deleted; a `: keep-alive` comment at least every 15 s"
        ),
        "content": {EVENT_STREAM: {"itemSchema": EVENT_SCHEMA}},
    }
}


def _encoded(event: FeedEvent) -> ServerSentEvent:
    if event.kind == "deleted":
        return ServerSentEvent(json.dumps({"id": event.job_id}), event="deleted", sep="\n")
    data = json.dumps(event.document, separators=(",", ":"))
    return ServerSentEvent(data, event="job", id=event.etag, sep="\n")


async def _encode(subscription: Subscription) -> AsyncIterator[ServerSentEvent]:
    async for event in subscription.events():
        yield _encoded(event)


class EventStream(EventSourceResponse):
    """A subscription's events as `text/event-stream`; the subscription is closed when the
    stream ends for any reason (the job ended, the client left, the server stops)."""

    def __init__(self, subscription: Subscription, runtime: Runtime) -> None:
        super().__init__(
            _encode(subscription),
            ping=runtime.settings.events_keepalive_seconds,
            ping_message_factory=lambda: ServerSentEvent(comment="keep-alive", sep="\n"),
            sep="\n",
        )
        self.subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.subscription.close()


def _base_url(runtime: Runtime, request: Request) -> str:
    return runtime.base_url_for(str(request.base_url))


@router.get(
    "/job/{job_id}/events",
    response_class=EventSourceResponse,
    responses={**STREAM_RESPONSE, **problem_responses(401, 404, 429)},
    summary="Follow a job live",
)
async def job_events(
    request: Request, account: CurrentAccount, job_id: JobId, runtime: RuntimeDep
) -> EventStream:
    """The job as it is now, then one event per change (status, queue place, progress at
    most once a second); the stream ends after the event of its end, or after `deleted`."""
    subscription = await service.follow_job(
        runtime, job_id, account.id, base_url=_base_url(runtime, request)
    )
    return EventStream(subscription, runtime)


@router.get(
    "/jobs/events",
    response_class=EventSourceResponse,
    responses={**STREAM_RESPONSE, **problem_responses(401, 429)},
    summary="Follow your jobs live",
)
async def jobs_events(
    request: Request, account: CurrentAccount, runtime: RuntimeDep
) -> EventStream:
    """Your queued and running jobs as they are now, then one event per change of any of
    your jobs (new ones included); `deleted` when one is deleted. The stream stays open."""
    subscription = await service.follow_jobs(
        runtime, account.id, base_url=_base_url(runtime, request)
    )
    return EventStream(subscription, runtime)

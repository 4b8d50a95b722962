"""Routes of the job lifecycle: convert, follow, list, cancel, delete (downloads: routes_output).

Each handler parses the request, makes one call into `vidq.jobs`, and renders the answer.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from vidq.api.auth import CurrentAccount, RuntimeDep
from vidq.api.dry_run import DRY_RUN_QUERY, check_only
from vidq.api.http import etag_matches
from vidq.api.json_request import read_json_convert
from vidq.api.params import STRICT_LIMIT, STRICT_WAIT, JobId, preferred_wait, query_items
from vidq.api.schemas import CONVERT_REQUEST_BODY, JobList, JobModel, problem_responses
from vidq.api.uploads import (
    UploadSlots,
    body_chunks,
    convert_form,
    receive_multipart,
    receive_raw,
)
from vidq.errors import BadRequest, InvalidOption
from vidq.jobs import service, views
from vidq.jobs.fields import CheckedFields, check_field_alone, check_fields, check_json_fields
from vidq.jobs.runtime import Runtime
from vidq.jobs.states import FINISHED, JobStatus
from vidq.jobs.strict import field_label, whole_number
from vidq.jobs.submission import (
    NamedUpload,
    Receiver,
    StoredInput,
    Submitted,
    submit,
    submit_url,
)

router = APIRouter()

RETRY_AFTER_SECONDS = {JobStatus.QUEUED.value: 5, JobStatus.RUNNING.value: 2}


def _retry_after(document: dict[str, Any]) -> dict[str, str]:
    seconds = RETRY_AFTER_SECONDS.get(document["status"])
    return {} if seconds is None else {"Retry-After": str(seconds)}


def _base_url(runtime: Runtime, request: Request) -> str:
    return runtime.base_url_for(str(request.base_url))


async def _receiver(
    request: Request, runtime: Runtime, form: str
) -> tuple[Receiver, CheckedFields | None]:
    """How to store this request's input, and its fields if they can be checked before
    the body is read (a raw upload's query: a bad option is refused before any upload)."""
    max_bytes = runtime.settings.max_upload_bytes
    idle_seconds = runtime.settings.body_idle_timeout_seconds
    if form == "multipart":

        def check_field(name: str, value: str) -> None:
            if name != "upload_id":  # names the input: not an option
                check_field_alone(name, value, runtime.settings)

        async def multipart(key: str) -> StoredInput | NamedUpload:
            return await receive_multipart(
                request,
                runtime.storage,
                key,
                max_bytes=max_bytes,
                idle_seconds=idle_seconds,
                check_field=check_field,
                max_part_bytes=runtime.settings.max_overlay_bytes,
            )

        return multipart, None
    fields: dict[str, str] = {}
    for name, value in query_items(request.scope["query_string"]):
        if name in fields:
            raise InvalidOption.field(field_label(name), "is given more than once")
        fields[name] = value
    upload_id = fields.pop("upload_id", None)
    filename = None if upload_id is not None else fields.pop("filename", None)
    checked = await check_fields(fields, runtime.settings, filename=filename)
    if upload_id is not None:

        async def named(key: str) -> NamedUpload:
            async for chunk in body_chunks(request, idle_seconds):
                if chunk:
                    raise BadRequest(
                        "Send either a body or the query parameter upload_id, not both."
                    )
            return NamedUpload(upload_id, fields)

        return named, checked

    async def raw(key: str) -> StoredInput:
        stored = await receive_raw(
            request,
            runtime.storage,
            key,
            filename=filename,
            max_bytes=max_bytes,
            idle_seconds=idle_seconds,
        )
        return dataclasses.replace(stored, fields=fields)

    return raw, checked


async def _submit_json(
    request: Request, runtime: Runtime, owner_id: str, idempotency_key: str | None
) -> Submitted:
    """POST /convert with a JSON body: a `source_url` to import, or an `upload_id`."""
    body = await read_json_convert(request, runtime.settings.body_idle_timeout_seconds)
    fields, checked = await check_json_fields(body.options, runtime.settings)
    if body.source_url is not None:
        return await submit_url(
            runtime,
            owner_id,
            body.source_url,
            fields,
            idempotency_key=idempotency_key,
            checked=checked,
        )
    upload_id = body.upload_id or ""

    async def named(key: str) -> NamedUpload:
        return NamedUpload(upload_id, fields)

    return await submit(runtime, owner_id, named, idempotency_key=idempotency_key, checked=checked)


@router.post(
    "/convert",
    status_code=202,
    response_model=JobModel,
    responses={
        200: {
            "model": JobModel,
            "description": "The job an earlier request with the same Idempotency-Key made",
        },
        201: {
            "model": JobModel,
            "description": "With `Prefer: wait=N`: the job finished within N seconds",
        },
        204: {"description": "With `?dry_run=true`: the options pass; nothing was done"},
        **problem_responses(400, 401, 408, 409, 413, 415, 422, 429, 503, 507),
    },
    openapi_extra={"requestBody": CONVERT_REQUEST_BODY},
    summary="Queue a conversion",
)
async def convert(
    request: Request,
    account: CurrentAccount,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    prefer: Annotated[
        list[str] | None,
        Header(
            description="`wait=N` (RFC 7240, 0 < N <= 60): hold the answer until the job"
            " ends (then 201 with the finished Job) or N seconds pass (then 202)."
            " Other preferences and values are ignored."
        ),
    ] = None,
    dry_run: DRY_RUN_QUERY = None,
) -> Response:
    """Upload a video with its options (or name one: a `source_url` to fetch, a finished
    resumable upload's `upload_id`); the job is queued and its id returned at once (202),
    or with `Prefer: wait=N` once it has finished (201) or N seconds have passed (202).
    With `?dry_run=true` the request is only checked: `204`, or the problem it would get."""
    wait = preferred_wait(prefer or [])
    query = query_items(request.scope["query_string"])
    if dry_run is not None:
        return await check_only(request, runtime, query)
    named_upload = any(name == "upload_id" for name, _ in query)
    form = convert_form(request.headers.get("content-type", ""), named_upload=named_upload)
    slots: UploadSlots = request.app.state.upload_slots
    if form == "json":
        with slots.take():
            submitted = await _submit_json(request, runtime, account.id, idempotency_key)
    else:
        receive, checked = await _receiver(request, runtime, form)
        with slots.take():
            submitted = await submit(
                runtime, account.id, receive, idempotency_key=idempotency_key, checked=checked
            )
    document = await service.submitted_document(
        runtime, submitted, base_url=_base_url(runtime, request), wait_seconds=wait
    )
    headers = {"Location": f"/job/{document['id']}", **_retry_after(document)}
    status = 200 if submitted.replayed else 202
    if wait is not None:
        headers["Preference-Applied"] = f"wait={wait:g}"
        if not submitted.replayed and document["status"] in FINISHED:
            status = 201
    return JSONResponse(document, status_code=status, headers=headers)


@router.get(
    "/job/{job_id}",
    response_model=JobModel,
    responses={304: {"description": "Not modified"}, **problem_responses(401, 404, 422, 429)},
    summary="Follow a job",
)
async def get_job(
    request: Request,
    account: CurrentAccount,
    job_id: JobId,
    runtime: RuntimeDep,
    wait: Annotated[
        float | None,
        STRICT_WAIT,
        Query(
            gt=0,
            le=60,
            description="Hold the answer until the job finishes or this many seconds pass.",
        ),
    ] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The job's current state. With `?wait=N`, held until it finishes or N seconds pass."""
    base_url = _base_url(runtime, request)
    if wait is None:
        document = await service.document(runtime, job_id, account.id, base_url=base_url)
    else:
        document = await service.wait_for_end(
            runtime, job_id, account.id, seconds=wait, base_url=base_url
        )
    etag = views.etag(document)
    headers = {"ETag": etag, **_retry_after(document)}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(document, headers=headers)


@router.delete(
    "/job/{job_id}",
    status_code=204,
    responses=problem_responses(401, 404, 429),
    summary="Delete a job",
)
async def delete_job(account: CurrentAccount, job_id: JobId, runtime: RuntimeDep) -> Response:
    """Remove a job: a queued one leaves the queue, a running one is stopped, files go too."""
    await service.delete(runtime, job_id, account.id)
    return Response(status_code=204)


@router.post(
    "/job/{job_id}/cancel",
    response_model=JobModel,
    responses=problem_responses(401, 404, 409, 429),
    summary="Cancel a job",
)
async def cancel_job(
    request: Request, account: CurrentAccount, job_id: JobId, runtime: RuntimeDep
) -> Response:
    """Stop a queued or running job, keeping its record (status `cancelled`)."""
    document = await service.cancel(
        runtime, job_id, account.id, base_url=_base_url(runtime, request)
    )
    return JSONResponse(document)


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    value = None
    if cursor.isascii():
        try:
            text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), b"-_", validate=True)
        except binascii.Error:
            text = b""
        value = whole_number(text.decode("ascii", "replace"))
    if value is None or value < 1:
        raise InvalidOption.field("cursor", "is not a cursor this server gave out")
    return value


def _encode_cursor(seq: int | None) -> str | None:
    return None if seq is None else base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


@router.get(
    "/jobs",
    response_model=JobList,
    responses=problem_responses(401, 422, 429),
    summary="List your jobs",
)
async def list_jobs(
    request: Request,
    account: CurrentAccount,
    runtime: RuntimeDep,
    status: Annotated[
        list[JobStatus] | None, Query(description="Only jobs in these states (repeatable).")
    ] = None,
    limit: Annotated[int, STRICT_LIMIT, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Your jobs, newest first, a page at a time."""
    documents, next_seq = await service.list_documents(
        runtime,
        account.id,
        statuses=[s.value for s in status or []],
        limit=limit,
        before_seq=_decode_cursor(cursor),
        base_url=_base_url(runtime, request),
    )
    return {"jobs": documents, "next_cursor": _encode_cursor(next_seq)}

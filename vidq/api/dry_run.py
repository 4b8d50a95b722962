"""`POST /convert?dry_run=true`: a conversion request checked as it would be, and not done.

A client about to send a large file the long way (a resumable upload: many requests,
perhaps hours) asks first, so that a bad option is refused before any of the file goes
up; one request with the file in it needs no such step (its options are checked before
its body is read). The options come as they would in the request itself: the members of
a JSON object (beside a `source_url`, checked as at submission, or an `upload_id`, not
looked up: the upload may not exist yet), or query parameters with no body. Everything
that can be known without the input is checked, with the same rules and the same `422`
answers; what depends on the input (a `start` past its end, a video preset for an audio
file) is only known once it has arrived. Nothing is stored, no job is made: `204`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from starlette.requests import Request
from starlette.responses import Response

from vidq.api.json_request import read_json_object, split_input
from vidq.api.uploads import body_chunks
from vidq.errors import BadRequest, InvalidOption, UnsupportedContentType
from vidq.jobs.fields import check_fields, check_json_fields, check_source_url
from vidq.jobs.runtime import Runtime
from vidq.jobs.strict import field_label

DRY_RUN = "dry_run"
DRY_RUN_QUERY = Annotated[
    str | None,
    Query(
        description="`true`: check the options (the JSON members, or the other query"
        " parameters) as this request would, and answer `204` or its `422`; nothing is"
        " uploaded, stored or queued. For a client about to send a large file resumably."
    ),
]
# Query parameters of the raw form that name the input rather than an option.
_INPUT_PARAMETERS = ("filename", "upload_id")


async def check_only(request: Request, runtime: Runtime, query: list[tuple[str, str]]) -> Response:
    """Check a /convert request's options (and `source_url`) without doing it: `204`, or
    the problem the request itself would get."""
    fields: dict[str, str] = {}
    for name, value in query:
        if name in fields:
            raise InvalidOption.field(field_label(name), "is given more than once")
        fields[name] = value
    if fields.pop(DRY_RUN) != "true":
        raise InvalidOption.field(DRY_RUN, "must be true (or left out, to convert)")
    settings = runtime.settings
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        if fields:
            raise BadRequest(
                "With a JSON body, the options are members of it, not query parameters."
            )
        members = await read_json_object(request, settings.body_idle_timeout_seconds)
        source_url, _ = split_input(members)
        await check_json_fields(members, settings)
        if source_url is not None:
            await check_source_url(source_url, settings.address_policy)
        return Response(status_code=204)
    async for chunk in body_chunks(request, settings.body_idle_timeout_seconds):
        if chunk:
            raise UnsupportedContentType(
                "A dry run takes the options alone: as a JSON object, or in the query with no body."
            )
    filename = fields.get("filename")
    for name in _INPUT_PARAMETERS:
        fields.pop(name, None)
    await check_fields(fields, settings, filename=filename)
    return Response(status_code=204)

"""The JSON form of POST /convert: one object naming the input, with the options beside it.

`{"source_url": "https://…"}` (the service fetches the input) or `{"upload_id": "…"}` (a
finished resumable upload), and every option as a member of the same object. A body that
is not JSON at all (or not UTF-8) is `400 bad_request`; JSON that parses but is not
strict (vidq.jobs.strict), or is not an object, is `422 invalid_option`; members of a
type no option takes are named in the same `422` as options of a wrong value
(vidq.jobs.fields.check_json_fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from vidq.api.uploads import body_chunks
from vidq.errors import BadRequest, InvalidOption, InvalidSource, UploadTooLarge
from vidq.jobs.strict import JSONNotParsed, JSONNotStrict, parse_json

MAX_JSON_BYTES = 64 * 1024


@dataclass(frozen=True)
class JsonConvert:
    """A JSON /convert request: its input (exactly one of the two) and its other members."""

    source_url: str | None
    upload_id: str | None
    options: dict[str, Any]


async def _read(request: Request, idle_seconds: float) -> str:
    body = bytearray()
    async for chunk in body_chunks(request, idle_seconds):
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise UploadTooLarge(f"A JSON request is at most {MAX_JSON_BYTES} bytes.")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("The body is not JSON: it is not UTF-8 text.") from exc


def _input_member(members: dict[str, Any], name: str) -> str | None:
    value = members.pop(name, None)
    if value is None or isinstance(value, str):
        return value
    raise InvalidSource(f"{name} must be a string.")


async def read_json_object(request: Request, idle_seconds: float) -> dict[str, Any]:
    """The JSON object of a request, read (at most `MAX_JSON_BYTES`) and parsed strictly."""
    text = await _read(request, idle_seconds)
    try:
        members = parse_json(text)
    except JSONNotParsed as exc:
        raise BadRequest(f"The body {exc}") from exc
    except JSONNotStrict as exc:
        raise InvalidOption.field("body", f"must be strict JSON: it {exc}") from exc
    if not isinstance(members, dict):
        raise InvalidOption.field("body", "must be a JSON object of the input and its options")
    return members


def split_input(members: dict[str, Any]) -> tuple[str | None, str | None]:
    """Take `source_url` and `upload_id` out of the members; each a string or absent."""
    source_url = _input_member(members, "source_url")
    upload_id = _input_member(members, "upload_id")
    if source_url is not None and upload_id is not None:
        raise InvalidSource("Give either source_url or upload_id, not both.")
    return source_url, upload_id


async def read_json_convert(request: Request, idle_seconds: float) -> JsonConvert:
    """The JSON request of POST /convert, read (at most `MAX_JSON_BYTES`) and checked."""
    members = await read_json_object(request, idle_seconds)
    source_url, upload_id = split_input(members)
    if source_url is None and upload_id is None:
        raise BadRequest(
            "The JSON body names no input: give source_url (a URL to fetch the video from)"
            " or upload_id (a finished resumable upload)."
        )
    return JsonConvert(source_url, upload_id, members)

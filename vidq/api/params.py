"""Path and query parameters, read strictly (the grammars are vidq.jobs.strict's).

FastAPI's own readings are lenient where a contract should not be: `int` and `float`
parameters take `1_000`, `+5`, `nan` and `inf`, and Starlette decodes a query's bytes
that are not UTF-8 into U+FFFD. So a job id, `wait`, `limit` and the options of a raw
upload are read here: a malformed job id is `404` before any lookup, a malformed
number is `422 invalid_option` naming it, and a raw upload's query keeps its bytes that
are not UTF-8 for the field check to refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Path
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from vidq.jobs.reads import require_job_id
from vidq.jobs.strict import decimal_number, decode_text, whole_number


def _job_id(job_id: Annotated[str, Path(description="The job's id (a UUID).")]) -> str:
    require_job_id(job_id)
    return job_id


# Declared after the route's account, so that a request without a key is 401 first.
JobId = Annotated[str, Depends(_job_id)]


def _strict_number(
    parse: Callable[[str], float | int | None], low: float, high: float, message: str
) -> BeforeValidator:
    """A validator that reads a parameter with `parse` and checks low < value <= high."""

    def validate(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        number = parse(value.strip())
        if number is None or not low < number <= high:
            raise PydanticCustomError("strict_number", message)
        return number

    return BeforeValidator(validate)


# Put in a parameter's Annotated metadata, beside its Query() (which documents the range).
STRICT_WAIT = _strict_number(
    decimal_number,
    0,
    60,
    "must be a number of seconds greater than 0 and at most 60, in digits with an"
    " optional decimal point such as 5 or 2.5 (no sign or exponent)",
)
STRICT_LIMIT = _strict_number(
    whole_number,
    0,
    100,
    "must be a whole number between 1 and 100, in the digits 0-9 only"
    " (no sign, decimal point, exponent or separator)",
)


def query_items(query_string: bytes) -> list[tuple[str, str]]:
    """A raw query's name/value pairs in order, decoded with `decode_text` (not repaired)."""
    items: list[tuple[str, str]] = []
    for part in query_string.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        items.append((_query_text(name), _query_text(value)))
    return items


def _query_text(data: bytes) -> str:
    return decode_text(unquote_to_bytes(data.replace(b"+", b" ")))


MAX_PREFER_WAIT_SECONDS = 60.0


def preferred_wait(headers: list[str]) -> float | None:
    """The `wait` preference of a request's `Prefer` headers (RFC 7240), in seconds: the
    first one given, if it is a number with 0 < N <= 60; None otherwise. A preference the
    server cannot honour is ignored, never an error (RFC 7240 section 2)."""
    for header in headers:
        for preference in _outside_quotes(header, ","):
            name, _, value = _outside_quotes(preference, ";")[0].partition("=")
            if name.strip().lower() != "wait":
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            seconds = decimal_number(value)
            if seconds is None or not 0 < seconds <= MAX_PREFER_WAIT_SECONDS:
                return None
            return seconds
    return None


def _outside_quotes(text: str, separator: str) -> list[str]:
    """`text` split at each `separator` that is not inside a quoted string."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts

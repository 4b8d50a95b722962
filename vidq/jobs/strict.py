"""Strict readings of what a client sends: text, JSON, numbers and job ids, one grammar each.

Whatever is accepted here can be stored and later rendered as strict JSON (RFC 8259,
UTF-8) without a second thought; whatever is not is refused when it arrives, so that no
job's document, list page or webhook body can be broken by what a client once sent.

- Text is valid Unicode that encodes as UTF-8. Request bytes are decoded with
  `decode_text` (UTF-8, `surrogateescape`): bytes that are not UTF-8 (`\\xff`, or an
  encoded surrogate such as `%ED%A0%80`) survive as lone surrogates, which `is_text`
  refuses, so the field can be named in a `422` instead of being quietly "repaired".
- JSON parses, and round-trips as strict JSON: no `NaN`/`Infinity`, no number too
  large for a double (`1e400`), no lone surrogate (`"\\ud800"`), no key given twice,
  nesting at most `MAX_JSON_DEPTH` deep (checked before parsing, so depth costs nothing).
- Numbers are ASCII digits, a decimal point for the fractional ones, and nothing else:
  no sign, exponent, `_` separator, hex, `nan`/`inf`, or digits of other scripts, and few
  enough digits that nothing can overflow before the range check.
- A job id is a UUID as the server writes it: lower-case hex with hyphens.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_JSON_DEPTH = 32
# More digits than any range the API has, and few enough that int() and float() stay exact.
MAX_INTEGER_DIGITS = 15

_WHOLE = re.compile(r"[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"(?P<whole>[0-9]+)(?:\.[0-9]+)?", re.ASCII)
_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)

NOT_TEXT = "is not valid UTF-8 text (it holds bytes that are not UTF-8, or a lone surrogate)"


def decode_text(data: bytes) -> str:
    """Bytes from a request as text; bytes that are not UTF-8 become lone surrogates."""
    return data.decode("utf-8", "surrogateescape")


def is_text(value: str) -> bool:
    """Whether `value` is valid Unicode text: no lone surrogate, so it encodes as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def field_label(name: str) -> str:
    """A field's name fit to show in an error, even when it is not valid text itself."""
    return name if is_text(name) else name.encode("utf-8", "backslashreplace").decode("utf-8")


def shown(text: str, limit: int = 40) -> str:
    """A client's value quoted for an error message: repr'd (so always printable), cut short."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


class JSONNotParsed(ValueError):
    """The text is not JSON at all."""


class JSONNotStrict(ValueError):
    """The text parses, but not as JSON that round-trips strictly (the message says why)."""


def parse_json(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The value of a client's JSON text; JSONNotParsed or JSONNotStrict (both ValueError)."""
    if json_depth(text) > max_depth:
        raise JSONNotStrict(f"nests deeper than {max_depth} levels")
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except JSONNotStrict:
        raise
    except ValueError as exc:  # JSONDecodeError, or an integer past Python's digit limit
        raise JSONNotParsed(f"is not JSON: {exc}") from None
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:  # UnicodeEncodeError: a lone surrogate, as a \\u escape
        raise JSONNotStrict("holds text that is not valid Unicode (a lone surrogate)") from None
    return value


def json_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings aside)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise JSONNotStrict(f"holds {name}, which is not JSON (RFC 8259 numbers are finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONNotStrict(f"holds the number {shown(text)}, too large for a double")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise JSONNotStrict(f"has the key {shown(key)} more than once")
        value[key] = item
    return value


def whole_number(text: str) -> int | None:
    """The integer `text` writes in ASCII digits alone, else None (also when far too long)."""
    if len(text) > MAX_INTEGER_DIGITS or not _WHOLE.fullmatch(text):
        return None
    return int(text)


def decimal_number(text: str) -> float | None:
    """The number `text` writes as ASCII digits with an optional fraction (`12`, `12.5`), else None."""
    match = _DECIMAL.fullmatch(text)
    if match is None or len(match["whole"]) > MAX_INTEGER_DIGITS:
        return None
    return float(text)


def is_job_id(text: str) -> bool:
    """Whether `text` is a job id in the form the server writes them."""
    return _JOB_ID.fullmatch(text) is not None

"""The `priority` option: -10…10, default 0; higher starts first (API.md "Scheduling")."""

from __future__ import annotations

import re

from vidq.jobs.strict import shown

MIN_PRIORITY = -10
MAX_PRIORITY = 10
DEFAULT_PRIORITY = 0

_PRIORITY = re.compile(r"-?[0-9]{1,3}")


def parse_priority(text: str) -> int:
    """A whole number from -10 to 10 in ASCII digits, with a leading minus sign if negative."""
    if not _PRIORITY.fullmatch(text):
        raise ValueError(
            f"must be a whole number between {MIN_PRIORITY} and {MAX_PRIORITY}, in the digits"
            f" 0-9 with a leading - if negative (no plus sign, decimal point, exponent or"
            f" separator); got {shown(text)}"
        )
    value = int(text)
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise ValueError(f"must be between {MIN_PRIORITY} and {MAX_PRIORITY}; got {value}")
    return value

"""What the logs may show: bearer secrets in URLs are redacted before any record is written.

A signed download URL is a bearer credential: whoever reads the access log could use it.
`redact` masks the `signature` (and `token`) query parameters and the token of a signed
path prefix (`/s/<token>/…`); `install_redaction` applies it to the message and arguments
of every log record the process makes.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"
_SECRET_QUERY = re.compile(r"(?i)([?&](?:signature|token|key)=)[^&#\s\"']*")
_SIGNED_PREFIX = re.compile(r"(/s/)[^/?#\s\"']+")


def redact(text: str) -> str:
    """`text` with every URL secret replaced by `[redacted]`."""
    return _SIGNED_PREFIX.sub(rf"\g<1>{REDACTED}", _SECRET_QUERY.sub(rf"\g<1>{REDACTED}", text))


def _redact_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}


_installed = False


def install_redaction() -> None:
    """Redact every log record of this process as it is made, whichever logger or handler
    takes it (uvicorn's access log among them). Calling it again has no effect."""
    global _installed
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(redacting_factory)
    _installed = True

"""Signed, expiring download URLs: HMAC-SHA256 over the job id and the expiry.

A link's `expires` and `signature` come from anyone, so they are checked by shape before
any use: `expires` as the server writes it (decimal Unix seconds, no sign or leading
zero, at most 12 digits) and `signature` as 43 base64url characters. A link of any
other shape is simply not valid, like one with a wrong signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_EXPIRES = re.compile(r"0|[1-9][0-9]{0,11}", re.ASCII)
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)


def download_signature(secret: str, job_id: str, expires_unix: int) -> str:
    """The signature that makes `/job/{id}/output?expires=…` valid without a key."""
    mac = hmac.new(secret.encode(), f"{job_id}.{expires_unix}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def signed_expiry(
    secret: str, job_id: str, expires: str | None, signature: str | None
) -> int | None:
    """The expiry (Unix seconds) a link's `expires` and `signature` vouch for; None unless
    they have the shapes `download_signature` makes and the signature is right."""
    if expires is None or signature is None:
        return None
    if not (_EXPIRES.fullmatch(expires) and _SIGNATURE.fullmatch(signature)):
        return None
    expires_unix = int(expires)
    expected = download_signature(secret, job_id, expires_unix)
    return expires_unix if hmac.compare_digest(expected, signature) else None

"""Signed, expiring download URLs: HMAC-SHA256 over the job id and the expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac


def download_signature(secret: str, job_id: str, expires_unix: int) -> str:
    """The signature that makes `/job/{id}/output?expires=…` valid without a key."""
    mac = hmac.new(secret.encode(), f"{job_id}.{expires_unix}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def signature_valid(secret: str, job_id: str, expires_unix: int, signature: str) -> bool:
    """Whether `signature` was made by `download_signature` for these values."""
    return hmac.compare_digest(download_signature(secret, job_id, expires_unix), signature)

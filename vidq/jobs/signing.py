"""Signed, expiring links: HMAC-SHA256 over the job id and the expiry.

Two forms, both made with the process's download signing key:

- `download_url`: `/job/{id}/output?expires=…&signature=…` for the job's main output;
- the files prefix `base_url`: `/s/<token>/`, under which every file of the job is reachable,
  so that a playlist's relative references stay signed. The token is
  `<job id>.<expires>.<signature>` (all URL-safe), its signature made for another purpose
  than the download's, so one cannot stand in for the other.

A link's parts come from anyone, so they are checked by shape before any use: `expires`
as the server writes it (decimal Unix seconds, no sign or leading zero, at most 12
digits) and `signature` as 43 base64url characters. A link of any other shape is simply
not valid, like one with a wrong signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

_EXPIRES_PATTERN = r"0|[1-9][0-9]{0,11}"
_SIGNATURE_PATTERN = r"[A-Za-z0-9_-]{43}"
_EXPIRES = re.compile(_EXPIRES_PATTERN, re.ASCII)
_SIGNATURE = re.compile(_SIGNATURE_PATTERN, re.ASCII)
_FILES_TOKEN = re.compile(
    r"(?P<job>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    rf"\.(?P<expires>{_EXPIRES_PATTERN})\.(?P<signature>{_SIGNATURE_PATTERN})",
    re.ASCII,
)


def _mac(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def download_signature(secret: str, job_id: str, expires_unix: int) -> str:
    """The signature that makes `/job/{id}/output?expires=…` valid without a key."""
    return _mac(secret, f"{job_id}.{expires_unix}")


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


@dataclass(frozen=True)
class FilesToken:
    """What a files prefix token says: whose files, until when, and the signature of that."""

    job_id: str
    expires_unix: int
    signature: str


def files_token(secret: str, job_id: str, expires_unix: int) -> str:
    """The token of the signed prefix `/s/<token>/` for a job's files until `expires_unix`."""
    return f"{job_id}.{expires_unix}.{_mac(secret, f'files:{job_id}.{expires_unix}')}"


def parse_files_token(token: str) -> FilesToken | None:
    """The parts of a token of the right shape (not yet checked); None for any other text."""
    match = _FILES_TOKEN.fullmatch(token)
    if match is None:
        return None
    return FilesToken(match["job"], int(match["expires"]), match["signature"])


def files_token_valid(secret: str, token: FilesToken) -> bool:
    """Whether the token's signature was made with `secret` for its job and expiry."""
    expected = files_token(secret, token.job_id, token.expires_unix)
    return hmac.compare_digest(expected.rsplit(".", 1)[1], token.signature)

"""How `vidq convert` hands each input to the service: a file in one request, a large file
as a resumable (tus) upload that a later run can continue, or a URL the service fetches.

A file larger than `--resumable-above` (64 MiB by default) goes resumably: its upload is
remembered (vidq.client.UploadStore, under the user's cache folder) before its first
byte, so that after a crash, Ctrl-C or a network gone for good, `vidq convert --resume
FILE` goes on from the bytes the service has; the job is made once the last byte is in.
Its options are checked before the first byte goes up (`POST /convert?dry_run=true`), as
they are for a file sent in one request.
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vidq.cli.display import Row, human_bytes
from vidq.cli.failures import USAGE, CommandFailed
from vidq.client import FileIdentity, Job, UploadStore, VidqAPIError, VidqClient

DEFAULT_RESUMABLE_ABOVE = "64M"
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_URL = re.compile(r"^https?://", re.IGNORECASE)

# A file, or the URL of one.
Source = Path | str


class Stopped(Exception):
    """Ctrl-C was pressed: an upload in progress ends here."""


def parse_size(text: str) -> int:
    """`64M`, `1G`, `512k`, `1000000`: bytes (binary units: 64M is 64 MiB)."""
    match = _SIZE.match(text)
    if match is None:
        raise CommandFailed(
            f"--resumable-above takes a size such as 64M, 1G or 0 (always), not {text!r}.", USAGE
        )
    return int(match[1]) * _UNITS[match[2].lower()]


def is_url(text: str) -> bool:
    return bool(_URL.match(text))


def sources_of(given: list[str]) -> list[Source]:
    """The command's inputs: http(s) URLs as they are, everything else a file path."""
    return [text if is_url(text) else Path(text) for text in given]


def label_of(source: Source) -> str:
    """A row's label: the file's name, or the URL's last path segment (else its host)."""
    if isinstance(source, Path):
        return source.name
    parts = urlsplit(source)
    return parts.path.rstrip("/").rsplit("/", 1)[-1] or parts.hostname or source


@dataclass
class Sending:
    """How `vidq convert` sends its files, and what it tells of each."""

    resumable_above: int
    resume: bool
    store: UploadStore = field(default_factory=UploadStore)

    def goes_resumably(self, client: VidqClient, path: Path) -> bool:
        """Whether this file is sent as a resumable upload: above the size, or asked to go on
        with one begun before."""
        if path.stat().st_size > self.resumable_above:
            return True
        return self.resume and self.store.find(client.base_url, path) is not None


def upload_progress(row: Row, stop: threading.Event, size: int) -> Callable[[int], None]:
    """What an upload tells of its bytes sent: shown on the row; after Ctrl-C, Stopped."""

    def uploaded(sent: int) -> None:
        if stop.is_set():
            raise Stopped
        row.uploading(sent, size)

    return uploaded


def resume_advice(path: Path, error: Exception | None) -> str | None:
    """How to go on with the resumable upload of `path` after it stopped with `error` (None:
    Ctrl-C), if it can go on."""
    command = f"`vidq convert --resume {shlex.quote(str(path))}`"
    if isinstance(error, VidqAPIError):
        if error.code == "invalid_option":
            return f"The file is uploaded and kept: {command} with other options converts it."
        if error.status < 500 and error.status not in (408, 429):
            return None
    return f"{command} goes on from where it stopped."


def _resume_note(sending: Sending, client: VidqClient, path: Path) -> str | None:
    """What `--resume` will find for this file, when it is not an upload to go on with."""
    if not sending.resume:
        return None
    stored = sending.store.find(client.base_url, path)
    if stored is None:
        return "no unfinished upload of it to resume: sending it from the start"
    if stored.file != FileIdentity.of(path):
        return "it changed since its upload began: sending it from the start"
    return None


def send_resumably(
    client: VidqClient,
    path: Path,
    sending: Sending,
    row: Row,
    stop: threading.Event,
    *,
    idempotency_key: str | None,
    options: dict[str, Any],
) -> Job:
    """Send a file as a resumable upload (going on with one begun before, with `--resume`),
    the row showing its bytes; then make its job."""
    size = path.stat().st_size
    note = _resume_note(sending, client, path)
    if note is not None:
        row.note(note)

    def resumed(offset: int) -> None:
        if offset == size:
            row.note(f"its upload is all there ({human_bytes(size)}): asking for its job")
        else:
            row.note(f"resuming its upload at {human_bytes(offset)} of {human_bytes(size)}")

    return client.convert_resumable(
        path,
        store=sending.store,
        resume=sending.resume,
        idempotency_key=idempotency_key,
        on_progress=upload_progress(row, stop, size),
        on_resume=resumed,
        **options,
    )

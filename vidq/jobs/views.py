"""The Job as clients see it (API.md "The Job"), built from its row: in answers and in notifications."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from vidq.clock import rfc3339
from vidq.db.database import Database
from vidq.db.models import Job
from vidq.jobs.output_files import output_files
from vidq.jobs.reads import queue_position, queue_positions
from vidq.jobs.signing import download_signature, files_token
from vidq.jobs.states import EVENT_TYPES, JobStatus
from vidq.media.info import MediaInfo
from vidq.notify import outbox


def download_url(job: Job, *, base_url: str, secret: str) -> str | None:
    """The signed URL of a completed job's output, valid until it expires."""
    if job.expires_at is None:
        return None
    expires = int(job.expires_at.timestamp())
    query = urlencode(
        {"expires": expires, "signature": download_signature(secret, job.id, expires)}
    )
    return f"{base_url.rstrip('/')}/job/{job.id}/output?{query}"


def files_base_url(job: Job, *, base_url: str, secret: str) -> str | None:
    """The signed prefix (`…/s/<token>/`) under which every file of a completed job is
    reachable as `prefix + path`, valid until it expires."""
    if job.expires_at is None:
        return None
    token = files_token(secret, job.id, int(job.expires_at.timestamp()))
    return f"{base_url.rstrip('/')}/s/{token}/"


def _result_view(job: Job, *, base_url: str, secret: str) -> dict[str, Any]:
    """`result` of a completed job: its stored result, with its links and its files."""
    stored = job.result or {}
    prefix = files_base_url(job, base_url=base_url, secret=secret)
    result = {
        "download_url": download_url(job, base_url=base_url, secret=secret),
        "expires_at": rfc3339(job.expires_at),
        "remuxed": False,  # results stored before remuxes existed
        **stored,
        "base_url": prefix,
        "files": [file.to_json() for file in output_files(job)],
    }
    manifests = stored.get("manifests")
    result.pop("manifests", None)
    if manifests and prefix is not None:
        result["manifests"] = {
            name: prefix + quote(path, safe="/") for name, path in manifests.items()
        }
    return result


def _notification_view(
    job: Job, channel: str, rows: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    target = job.webhook_url if channel == "webhook" else job.email
    if target is None:
        return None
    key = "url" if channel == "webhook" else "to"
    row = next((r for r in rows if r["channel"] == channel), None)
    if row is None:
        return {key: target, "status": "pending", "attempts": 0, "last_error": None}
    return {
        key: target,
        "status": row["status"],
        "attempts": row["attempts"],
        "last_error": row["last_error"],
    }


# What `input` shows of an imported input that has not been fetched and probed yet.
_NOT_PROBED: dict[str, Any] = {
    "container": None,
    "duration_seconds": None,
    "video": None,
    "audio": None,
}


def _input_view(job: Job) -> dict[str, Any]:
    """`input`: the file as stored and probed (for a `source_url`, null until fetched)."""
    probed = _NOT_PROBED if job.input_info is None else MediaInfo.from_json(job.input_info).to_api()
    return {
        "filename": job.input_filename,
        "size_bytes": job.input_size_bytes,
        "content_type": job.input_content_type,
        **probed,
        "source_url": job.source_url,
    }


def job_view(
    job: Job,
    *,
    base_url: str,
    secret: str,
    queue_position: int | None = None,
    notifications: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The Job document of API.md."""
    processing_seconds = None
    if job.started_at and job.finished_at:
        processing_seconds = round((job.finished_at - job.started_at).total_seconds(), 3)
    result = None
    if job.status == JobStatus.COMPLETED and job.result is not None:
        result = _result_view(job, base_url=base_url, secret=secret)
    error = None
    if job.error_code:
        error = {"code": job.error_code, "message": job.error_message or ""}
    progress = job.progress_percent
    if job.status == JobStatus.COMPLETED:
        progress = 100.0
    elif job.status == JobStatus.QUEUED:
        progress = 0.0
    return {
        "id": job.id,
        "status": job.status,
        "progress_percent": None if progress is None else round(progress, 1),
        "eta_seconds": job.eta_seconds if job.status == JobStatus.RUNNING else None,
        "queue_position": queue_position if job.status == JobStatus.QUEUED else None,
        "priority": job.priority,
        "created_at": rfc3339(job.created_at),
        "started_at": rfc3339(job.started_at),
        "finished_at": rfc3339(job.finished_at),
        "processing_seconds": processing_seconds,
        "input": _input_view(job),
        "options": job.options,
        "result": result,
        "error": error,
        "notifications": {
            "webhook": _notification_view(job, "webhook", notifications),
            "email": _notification_view(job, "email", notifications),
        },
        "metadata": job.job_metadata,
    }


def etag(document: Mapping[str, Any]) -> str:
    """The ETag of a Job document (GET /job/{id}, and the `id` of its live events)."""
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    return f'"{digest[:32]}"'


async def render_jobs(
    db: Database, page: Sequence[Job], *, base_url: str, secret: str, fair_share: bool = False
) -> list[dict[str, Any]]:
    """The Job documents of some jobs, with their queue places and notification states
    (a query for each, not for each job; none when no job needs it)."""
    notified = [job.id for job in page if job.webhook_url is not None or job.email is not None]
    notes = await outbox.delivery_states(db, notified)
    places = await queue_positions(db, page)
    return [
        job_view(
            job,
            base_url=base_url,
            secret=secret,
            queue_position=(
                await queue_position(db, job, fair_share=True)
                if fair_share and job.id in places
                else places.get(job.id)
            ),
            notifications=notes.get(job.id, []),
        )
        for job in page
    ]


@dataclass(frozen=True)
class NotificationPayloads:
    """Builds the body every notification of a job's end carries (API.md "Notifications").

    Made once per process with the signing key and the public URL, since a notification
    is read outside any request and its download link must work from anywhere.
    """

    secret: str
    public_url: str

    def event(self, job: Job) -> dict[str, Any]:
        """`{"type": "job.completed" | …, "timestamp", "data": Job}` for a job that ended."""
        data = job_view(job, base_url=self.public_url, secret=self.secret)
        return {
            "type": EVENT_TYPES[JobStatus(job.status)],
            "timestamp": data["finished_at"],
            "data": data,
        }

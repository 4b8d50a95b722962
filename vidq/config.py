"""Settings: one typed object read from `VIDQ_*` environment variables and CLI flags."""

from __future__ import annotations

import ipaddress
import os
from functools import cached_property
from pathlib import Path
from urllib.parse import urlparse

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vidq import datadir
from vidq.outbound.targets import AddressPolicy, parse_allow_list

GIB = 1024**3


def default_workers() -> int:
    """One conversion per two cores (ffmpeg is itself multi-threaded), at least one."""
    return max(1, (os.cpu_count() or 2) // 2)


class Settings(BaseSettings):
    """Every setting of vidq. Each field is also the environment variable `VIDQ_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="VIDQ_", extra="ignore", frozen=True)

    # Where and how the server listens.
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="Port to listen on.")
    processes: int = Field(
        1,
        ge=1,
        le=64,
        description="vidq serve and vidq api only: server processes sharing the port (SO_REUSEPORT; Linux), so that requests use every core. With vidq serve, only the first runs the conversion workers (VIDQ_WORKERS), the notifier and the metrics port.",
    )
    data_dir: Path = Field(
        Path("vidq-data"),
        description="Directory for the SQLite database, files and the first API key; private to the user vidq runs as (0700, files 0600).",
    )
    public_url: str | None = Field(
        None,
        description="Base URL clients reach the service at; used in download_url and notifications. Default: the request's own base URL.",
    )
    log_level: str = Field("info", description="Logging level: debug, info, warning, error.")
    forwarded_allow_ips: str = Field(
        "",
        description="Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed: comma-separated addresses or networks (127.0.0.1, 10.0.0.0/8), or * for any peer. Default: none. X-Forwarded-Host is never read.",
    )

    # Backends.
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL. Default: SQLite at <data-dir>/vidq.db. PostgreSQL: postgresql://user@host/db.",
    )
    storage_url: str | None = Field(
        None,
        description="Where files live: file:///path for a directory, or s3://bucket/prefix for an S3-compatible bucket. Default: file://<data-dir>/files. A fleet shares one bucket (or one directory, e.g. an NFS mount).",
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="Endpoint of an S3-compatible store other than AWS (MinIO, R2, …), e.g. http://minio:9000. Credentials come from the standard AWS_* variables or ~/.aws.",
    )
    s3_region: str | None = Field(
        None,
        description="Region of the bucket. Default: AWS_DEFAULT_REGION or the AWS config file.",
    )
    s3_redirect_downloads: bool = Field(
        True,
        description="On an S3 bucket, answer requests for a job's stored bytes (download_url, media segments, init segments, posters, storyboards) with 302 to a presigned bucket URL valid for a few minutes, so the bytes skip the API; false: vidq streams them itself (a bucket clients cannot reach). Playlists and manifests are always served by vidq.",
    )
    secret_key: str | None = Field(
        None,
        description="Key that signs download URLs. Default: generated once and kept in the database.",
    )
    metrics_token: str | None = Field(
        None,
        description="Operator credential for GET /metrics (Authorization: Bearer <token>); when set, owners' API keys are refused there. Default: any owner's key, which sees only service-wide totals (no per-owner labels).",
    )

    # Workers and the queue.
    workers: int = Field(
        default_factory=default_workers,
        ge=0,
        le=64,
        description="Concurrent conversions in this process (0: API only). Default: half the cores, at least 1.",
    )
    lease_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a claimed job is held without a heartbeat before it returns to the queue.",
    )
    heartbeat_seconds: float = Field(
        1.0,
        gt=0,
        description="How often a running job records progress, renews its lease and checks for cancellation.",
    )
    poll_seconds: float = Field(
        1.0, gt=0, description="How often an idle worker looks for work when not woken."
    )
    max_attempts: int = Field(
        3,
        ge=1,
        description="Attempts before a job whose worker keeps disappearing fails with worker_lost.",
    )
    fair_share: bool = Field(
        False,
        description="Owners take turns: the next job to start is the oldest of the owner with the fewest running jobs, among the highest priority queued. Default: strictly highest priority, then oldest, across all owners.",
    )
    max_running_per_owner: int | None = Field(
        None,
        ge=1,
        description="Most jobs of one owner running at once across the fleet; the rest wait while other owners' jobs start. Default: no cap.",
    )
    chunk_seconds: float | None = Field(
        None,
        gt=0,
        description="Chunked encoding: a single-file H.264/H.265/VP9/AV1 job whose span is longer than this is cut into parts that idle workers encode in parallel, then joined. Set it on every worker of a fleet. Default: off.",
    )
    max_jobs: int | None = Field(
        None,
        ge=1,
        description="vidq worker only: run this many jobs, then exit 0 (a batch runner's task, a Kubernetes Job). Jobs handed back to the queue at shutdown do not count. Default: no limit.",
    )
    idle_exit_seconds: float | None = Field(
        None,
        gt=0,
        description="vidq worker only: exit 0 once no job has run for this many seconds (scale to zero). Default: never.",
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Also serve Prometheus metrics (GET /metrics, no key needed) on this port of VIDQ_HOST, from any vidq process: the way to scrape a vidq worker, which has no API. Default: none.",
    )
    shutdown_grace_seconds: float = Field(
        20.0,
        ge=0,
        description="On SIGTERM, how long running conversions may finish before they are stopped and re-queued.",
    )
    job_timeout_min_seconds: float = Field(
        600.0, gt=0, description="A conversion may always run at least this long."
    )
    job_timeout_factor: float = Field(
        10.0,
        gt=0,
        description="A conversion may run this many times the input's duration, if longer than the minimum.",
    )
    stall_seconds: float = Field(
        120.0,
        gt=0,
        description="A conversion whose ffmpeg reports no progress for this long fails with timeout.",
    )
    transient_retry_seconds: float = Field(
        60.0,
        ge=0,
        description="How long a fault of the database or the bucket that may pass (a connection refused or reset, a timeout, a 5xx or SlowDown answer) is retried, with a pause growing to 5 s, before the job it holds up fails with storage_unavailable (a request answers 503 storage_unavailable). Shorter faults never fail a job.",
    )

    # Live updates (GET /job/{id}/events, GET /jobs/events).
    events_keepalive_seconds: float = Field(
        15.0,
        gt=0,
        le=15,
        description="How often an idle live-update stream (Server-Sent Events) sends a `: keep-alive` comment, so that proxies keep it open.",
    )
    events_recheck_seconds: float = Field(
        2.0,
        gt=0,
        description="On SQLite, how often each watched job is read again for live updates, to see changes made by another process sharing the database file (PostgreSQL tells every process at once with NOTIFY).",
    )

    # Limits on what clients send and hold (README: "Limits on connections").
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A connection must send a request's complete headers within this many seconds of opening (or of its last answer), or it is closed.",
    )
    body_idle_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Longest pause in an upload's body (the upload ends with 408 request_timeout, nothing kept) or in a client's reading of an answer (the connection is closed).",
    )
    refused_upload_drain_seconds: float = Field(
        5.0,
        ge=0,
        description="An upload refused before its body is read (a bad option, a declared size over the limit) is answered at once; then the rest of its body is read and dropped for up to this many seconds before the connection is closed, so that the client reads the answer instead of a reset connection.",
    )
    refused_upload_drain_bytes: int = Field(
        64 * 1024**2,
        ge=0,
        description="How much of a refused upload's body is read and dropped, at most, before the connection is closed (see VIDQ_REFUSED_UPLOAD_DRAIN_SECONDS). Default: 64 MiB.",
    )
    max_connections: int | None = Field(
        None,
        ge=1,
        description="Open connections at once. One more first closes the oldest connection still waiting for request headers, if any; else it is answered 503 busy and closed. Default: (open-file limit - 64) / 2, from 16 to 4096.",
    )
    max_concurrent_uploads: int | None = Field(
        None,
        ge=1,
        description="Uploads received at once (POST /convert until its job is queued); one more is answered 503 busy. Default: an eighth of the connection limit, from 1 to 256.",
    )
    rate_limit_per_second: float = Field(
        10.0,
        ge=0,
        description="Requests one API key may make per second on average, beyond its burst (0: no limit). Over it: 429 rate_limited.",
    )
    rate_limit_burst: int = Field(
        100, ge=1, description="Requests one API key may make at once before the rate applies."
    )
    max_upload_bytes: int = Field(
        10 * GIB, gt=0, description="Largest accepted upload in bytes (413 too_large beyond)."
    )
    max_overlay_bytes: int = Field(
        4 * 1024**2,
        gt=0,
        description="Largest accepted watermark image or subtitles file in bytes, each (413 too_large beyond).",
    )
    max_unfinished_jobs: int = Field(
        100,
        ge=1,
        description="Queued or running jobs one owner may have (429 too_many_jobs beyond).",
    )
    max_input_width: int = Field(8192, ge=16, description="Widest accepted input in pixels.")
    max_input_height: int = Field(8192, ge=16, description="Tallest accepted input in pixels.")
    max_input_duration_seconds: float = Field(
        86400.0, gt=0, description="Longest accepted input in seconds."
    )
    probe_timeout_seconds: float = Field(
        30.0, gt=0, description="How long probing one file may take."
    )

    # Inputs fetched from a source_url, and resumable (tus) uploads.
    import_stall_seconds: float = Field(
        30.0,
        gt=0,
        description="A source_url import that receives nothing for this many seconds (connecting, waiting for headers, or mid-body) fails with import_failed.",
    )
    import_min_bytes_per_second: int = Field(
        16384,
        ge=0,
        description="A source_url import that receives fewer bytes than this per second, averaged over each window of VIDQ_IMPORT_STALL_SECONDS, fails as too slow (0: no minimum).",
    )
    import_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Further tries of a source_url import that failed for a reason that may pass (a network error, a body cut short, HTTP 408, 429 or 5xx), 2 s then 4 s … apart.",
    )
    upload_expiry_hours: float = Field(
        24.0,
        gt=0,
        description="Hours a resumable (tus) upload is kept after its last request: an unfinished one can be resumed, a finished one turned into a job, until then.",
    )

    # ffmpeg.
    ffmpeg: str | None = Field(
        None, description="ffmpeg binary to run. Default: the one the imageio-ffmpeg package ships."
    )
    ffmpeg_memory_bytes: int = Field(
        4 * GIB, gt=0, description="Address-space limit of each ffmpeg and probe process."
    )
    max_output_bytes: int | None = Field(
        None, gt=0, description="Largest output file. Default: 4x the input plus 1 GiB."
    )
    ffmpeg_threads: int = Field(0, ge=0, description="Threads per ffmpeg (0: ffmpeg decides).")

    # Retention.
    retention_hours: float = Field(
        24.0, gt=0, description="Hours a finished job's output stays downloadable."
    )
    orphan_grace_seconds: float = Field(
        3600.0,
        gt=0,
        description="Files no job owns (left by a crash mid-upload or mid-conversion) are removed once this old.",
    )
    janitor_seconds: float = Field(
        60.0, gt=0, description="How often expired outputs and orphaned files are swept."
    )

    # Notifications.
    smtp_url: str | None = Field(
        None,
        description="SMTP server for email: smtp://[user:pass@]host[:port] (STARTTLS when offered) or smtps://.",
    )
    smtp_from: str = Field("vidq@localhost", description="From address of notification emails.")
    webhook_allow_private: bool = Field(
        False,
        description="Allow webhooks and source_url imports to reach loopback and private addresses (local development only).",
    )
    url_allow: str = Field(
        "",
        description="Hosts and networks that webhooks and source_url imports may reach although they are private: comma-separated host[:port], address[:port], [IPv6]:port or CIDR entries (minio.internal:9000, 10.8.0.0/16). A host entry matches the URL's own host name; the others each address it resolves to. Default: none.",
    )
    webhook_timeout_seconds: float = Field(
        15.0, gt=0, description="Timeout of one webhook delivery attempt."
    )
    notify_retry_seconds: str = Field(
        "0,5,300,1800,7200,18000,36000,36000",
        description="Delay before each delivery attempt, comma-separated seconds (Standard Webhooks schedule).",
    )

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parsed = urlparse(value)
        if parsed.scheme == "file":
            return value
        if parsed.scheme == "s3" and parsed.netloc:
            return value
        raise ValueError("must be file:///path or s3://bucket[/prefix]")

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_forwarded_allow_ips(cls, value: str) -> str:
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an address, a network or *") from exc
        return ",".join(items)

    @field_validator("url_allow")
    @classmethod
    def _check_url_allow(cls, value: str) -> str:
        parse_allow_list(value)  # raises ValueError naming the bad entry
        return ",".join(item.strip() for item in value.split(",") if item.strip())

    @field_validator("notify_retry_seconds")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",")]
        except ValueError as exc:
            raise ValueError("must be comma-separated numbers of seconds") from exc
        if not delays or any(d < 0 for d in delays):
            raise ValueError("must list at least one non-negative delay")
        return value

    @cached_property
    def retry_schedule_seconds(self) -> list[float]:
        """The delay before each notification attempt; its length is the number of attempts."""
        return [float(part) for part in self.notify_retry_seconds.split(",")]

    @cached_property
    def address_policy(self) -> AddressPolicy:
        """Which addresses webhooks and source_url imports may reach."""
        return AddressPolicy(
            allow_private=self.webhook_allow_private, allowed=parse_allow_list(self.url_allow)
        )

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / datadir.DATABASE_FILE).resolve()}"

    @cached_property
    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return (self.data_dir / datadir.STORAGE_DIR).resolve().as_uri()

    @property
    def tmp_dir(self) -> Path:
        """Scratch space for conversions in progress."""
        return self.data_dir / datadir.SCRATCH_DIR

    def ffmpeg_binary(self) -> str:
        """The ffmpeg to run: VIDQ_FFMPEG, else the imageio-ffmpeg wheel's."""
        if self.ffmpeg:
            return self.ffmpeg
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())

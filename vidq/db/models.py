"""Tables of vidq. The job row is the queue: status, place, lease, progress and cancel live here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    column,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
    }


class Owner(Base):
    """Someone who holds API keys and owns jobs."""

    __tablename__ = "owners"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    webhook_secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class ApiKey(Base):
    """An API key, kept only as its SHA-256 hash."""

    __tablename__ = "api_keys"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    # When the key last authenticated a request, to the minute (written at most once a minute).
    last_used_at: Mapped[datetime | None]


class Job(Base):
    """A conversion: its request, its place in the queue, its lease and its outcome."""

    __tablename__ = "jobs"

    # `seq` orders the queue (FIFO across owners); `id` is what clients see.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(36), unique=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    # An imported input (`source_url`) is known only once a worker has fetched and probed
    # it: until then its content type, size, hash and probe are NULL.
    input_filename: Mapped[str] = mapped_column(String(300))
    input_content_type: Mapped[str | None] = mapped_column(String(200))
    input_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    input_sha256: Mapped[str | None] = mapped_column(String(64))
    input_info: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    source_url: Mapped[str | None] = mapped_column(String(2048))
    options: Mapped[dict[str, Any]]
    job_metadata: Mapped[dict[str, Any]] = mapped_column("metadata")
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    email: Mapped[str | None] = mapped_column(String(320))
    # -10…10: higher starts first (API.md "Scheduling"); `options` holds it too.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    progress_percent: Mapped[float | None] = mapped_column(Float)
    # While running: the seconds left as its worker estimates them from the progress rate.
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None]
    worker_id: Mapped[str | None] = mapped_column(String(100))

    output_key: Mapped[str | None] = mapped_column(String(300))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    expires_at: Mapped[datetime | None]
    expired: Mapped[bool] = mapped_column(Boolean, default=False)
    error_code: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Job:
        """A detached Job from a Core result row (column names as keys)."""
        return cls(**{("job_metadata" if k == "metadata" else k): v for k, v in row.items()})

    __table_args__ = (
        Index("ix_jobs_status_seq", "status", "seq"),
        Index("ix_jobs_owner_seq", "owner_id", "seq"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        # The queue's order (claim_next, queue_position): priority first, then age.
        Index("ix_jobs_status_priority_seq", "status", column("priority").desc(), "seq"),
        # Fair share: an owner's running count, its best queued job and its latest start.
        Index("ix_jobs_owner_status_priority", "owner_id", "status", "priority", "seq"),
        # (Only started jobs: queued ones, whose started_at is NULL, would sit where a
        # backward scan for the latest start begins on PostgreSQL.)
        Index(
            "ix_jobs_owner_started",
            "owner_id",
            "started_at",
            postgresql_where=column("started_at").is_not(None),
            sqlite_where=column("started_at").is_not(None),
        ),
    )


class IdempotencyKey(Base):
    """An Idempotency-Key seen from one owner: reserved while uploading, then bound to a job."""

    __tablename__ = "idempotency_keys"

    owner_id: Mapped[str] = mapped_column(
        ForeignKey("owners.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime]
    job_id: Mapped[str | None] = mapped_column(String(36))
    request_hash: Mapped[str | None] = mapped_column(String(64))


class Upload(Base):
    """A resumable (tus) upload: how far it got, where its bytes are, and the job it becomes.

    Its bytes are written straight to the blob of the job it will become (`job_id`, fixed
    when it is created), staged under `uploads/<id>` meanwhile; `store_state` is the
    store's own record of them (a bucket's multipart upload and its parts, the staged
    tail). One request at a time may write to it: the one holding `lock_token` until
    `locked_until`.
    """

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(String(36), unique=True)
    length_bytes: Mapped[int] = mapped_column(BigInteger)
    offset_bytes: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(300))
    content_type: Mapped[str | None] = mapped_column(String(200))
    # The Upload-Metadata header as sent, given back on HEAD.
    upload_metadata: Mapped[str | None] = mapped_column(Text)
    store_state: Mapped[dict[str, Any]]
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # Set when POST /convert takes it (and cleared again if that request fails).
    used_at: Mapped[datetime | None]
    lock_token: Mapped[str | None] = mapped_column(String(36))
    locked_until: Mapped[datetime | None]

    __table_args__ = (Index("ix_uploads_expires_at", "expires_at"),)


class Notification(Base):
    """An outbox row: one webhook or email to deliver about a job's end, retried until done."""

    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the webhook-id, msg_…
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(10))  # webhook | email
    target: Mapped[str] = mapped_column(String(2048))
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    lease_expires_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_notifications_status_next", "status", "next_attempt_at"),)


class ServerSetting(Base):
    """A key/value the whole fleet shares, such as the URL-signing key."""

    __tablename__ = "server_settings"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, typed as one (for insert/update/delete statements)."""
    return cast(Table, model.__table__)


__all__ = [
    "ApiKey",
    "Base",
    "IdempotencyKey",
    "Job",
    "JobPart",
    "Notification",
    "Owner",
    "ServerSetting",
    "Upload",
]


class JobPart(Base):
    """One part of a chunked job's video (API.md "Scheduling"): a claimable task of its own,
    leased like a job; its encoded file is stored at `output_key` until the join."""

    __tablename__ = "job_parts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    start_frame: Mapped[int] = mapped_column(Integer)
    end_frame: Mapped[int | None] = mapped_column(Integer)  # None: to the end of the span
    start_seconds: Mapped[float] = mapped_column(Float)  # where its decoding is cut in
    seconds: Mapped[float] = mapped_column(Float)  # its length, for the job's progress
    recipe: Mapped[dict[str, Any]]  # the options and probe its argv is built from
    status: Mapped[str] = mapped_column(String(16))  # queued, running, done, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None]
    worker_id: Mapped[str | None] = mapped_column(String(100))
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0…1
    output_key: Mapped[str] = mapped_column(String(300))
    error_message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_job_parts_job_idx", "job_id", "idx", unique=True),
        Index("ix_job_parts_status_lease", "status", "lease_expires_at"),
    )

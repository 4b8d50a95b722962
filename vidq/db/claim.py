"""The one query whose SQL differs by dialect: taking the next queued job.

A claim is the hottest statement of a fleet, so it is built once per dialect (and way of
scheduling) with bound parameters, `CLAIM_VALUES`, and only its parameters change from
one claim to the next (`claim_parameters`): building and compiling an UPDATE anew took
most of a claim's CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vidq.db.models import Job

_columns = Job.__table__.c
# What a claim sets: the job running, leased to a worker, one more attempt counted.
CLAIM_VALUES: dict[str, Any] = {
    "status": "running",
    "lease_token": bindparam("lease_token", type_=_columns.lease_token.type),
    "lease_expires_at": bindparam("lease_expires_at", type_=_columns.lease_expires_at.type),
    "worker_id": bindparam("worker_id", type_=_columns.worker_id.type),
    "attempts": Job.attempts + 1,
    "started_at": func.coalesce(Job.started_at, bindparam("now", type_=_columns.started_at.type)),
    "progress_percent": 0.0,
    "eta_seconds": None,
    "updated_at": bindparam("now", type_=_columns.updated_at.type),
}


def claim_parameters(
    *, now: datetime, lease_token: str, lease_expires_at: datetime, worker_id: str
) -> dict[str, Any]:
    """The parameters of one claim, for the statements built with `CLAIM_VALUES`."""
    return {
        "now": now,
        "lease_token": lease_token,
        "lease_expires_at": lease_expires_at,
        "worker_id": worker_id,
    }


_built: dict[tuple[str, object], Any] = {}


def built_once(dialect: str, kind: object, build: Callable[[], Any]) -> Any:
    """The claim statement of `kind` for `dialect`, built the first time it is asked for."""
    stmt = _built.get((dialect, kind))
    if stmt is None:
        stmt = _built[(dialect, kind)] = build()
    return stmt


async def claim_oldest_queued(conn: AsyncConnection, params: dict[str, Any]) -> Job | None:
    """Move the next queued job (highest priority, then oldest) to running, as
    `claim_parameters` say, atomically; return its row."""
    dialect = conn.dialect.name
    stmt = built_once(dialect, "plain", lambda: claim_statement(dialect, CLAIM_VALUES))
    row = (await conn.execute(stmt, params)).mappings().first()
    return Job.from_row(row) if row else None


def claim_statement(dialect: str, values: dict[str, Any]) -> Any:
    """The UPDATE … RETURNING that claims the next queued job.

    PostgreSQL: the sub-select locks one row with FOR UPDATE SKIP LOCKED, so concurrent
    workers each get a different job without waiting. SQLite: the caller's write
    transaction began IMMEDIATE, so the database's single writer makes this atomic.
    Both walk `ix_jobs_status_priority_seq` (status, priority DESC, seq) and stop at
    the first row.
    """
    oldest = (
        select(Job.seq)
        .where(Job.status == "queued")
        .order_by(Job.priority.desc(), Job.seq)
        .limit(1)
    )
    if dialect == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    return (
        update(Job)
        .where(Job.seq == oldest.scalar_subquery(), Job.status == "queued")
        .values(**values)
        .returning(*Job.__table__.columns)
    )

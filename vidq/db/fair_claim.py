"""Claiming under fair share or a per-owner cap (API.md "Scheduling"), in one statement.

For every owner the statement finds, through `ix_jobs_owner_status_priority` and
`ix_jobs_owner_started`, the highest priority among its queued jobs, how many of its
jobs are running, when it last had a job started, and its oldest queued job at that
priority; it then takes, among owners under the cap, the job of the highest priority,
and within it (with fair share) the owner with the fewest running jobs; among those,
the owner whose last start is longest ago (never first), so that owners take turns
even on a single worker, where every count is 0 at each claim; then the oldest job.
With one owner this is exactly the FIFO-by-priority order of
`claim.claim_oldest_queued`.

The running counts must not be raced: two workers each seeing an owner one job under
its cap would both claim. On PostgreSQL every such claim therefore first takes one
transaction-level advisory lock, so these claims run one after another (each is one
short indexed statement) and each reads the counts its predecessor committed (READ
COMMITTED takes the statement's snapshot after the lock was granted). SQLite's write
transactions already run one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from vidq.db.claim import CLAIM_VALUES, built_once, claim_oldest_queued
from vidq.db.models import Job, Owner

# The advisory lock that serialises fair-share and capped claims across the fleet.
CLAIM_LOCK_KEY = 0x76696471_0001  # "vidq" and 1


@dataclass(frozen=True)
class Scheduling:
    """How the next job is chosen: strict priority then age (the default), or with fair
    share between owners and/or a cap on one owner's running jobs."""

    fair_share: bool = False
    max_running_per_owner: int | None = None

    @property
    def plain(self) -> bool:
        """Whether the plain, lock-free claim applies (no fair share, no cap)."""
        return not self.fair_share and self.max_running_per_owner is None


FIFO = Scheduling()


def pick_statement(scheduling: Scheduling) -> Any:
    """The SELECT of the seq of the job to claim next (a scalar subquery)."""
    queued = aliased(Job)
    running = aliased(Job)
    best = aliased(Job)
    started = aliased(Job)
    owners = select(
        Owner.id.label("owner_id"),
        select(func.max(queued.priority))
        .where(queued.owner_id == Owner.id, queued.status == "queued")
        .scalar_subquery()
        .label("top"),
        select(func.count())
        .select_from(running)
        .where(running.owner_id == Owner.id, running.status == "running")
        .scalar_subquery()
        .label("running"),
        select(func.max(started.started_at))
        .where(started.owner_id == Owner.id)
        .scalar_subquery()
        .label("last_started"),
    ).cte("per_owner")
    # Each owner's probes run once (not again for the filter and the sort).
    owners = owners.prefix_with("MATERIALIZED", dialect="postgresql")
    oldest_at_top = (
        select(func.min(best.seq))
        .where(
            best.owner_id == owners.c.owner_id,
            best.status == "queued",
            best.priority == owners.c.top,
        )
        .scalar_subquery()
    )
    pick = select(oldest_at_top).where(owners.c.top.is_not(None))
    if scheduling.max_running_per_owner is not None:
        pick = pick.where(owners.c.running < scheduling.max_running_per_owner)
    order: list[Any] = [owners.c.top.desc()]
    if scheduling.fair_share:
        order += [owners.c.running, owners.c.last_started.asc().nulls_first()]
    order.append(oldest_at_top)
    return pick.order_by(*order).limit(1).scalar_subquery()


def fair_claim_statement(scheduling: Scheduling, values: dict[str, Any]) -> Any:
    """The UPDATE … RETURNING that claims the job `pick_statement` picks."""
    return (
        update(Job)
        .where(Job.seq == pick_statement(scheduling), Job.status == "queued")
        .values(**values)
        .returning(*Job.__table__.columns)
    )


async def claim_queued(
    conn: AsyncConnection, scheduling: Scheduling, params: dict[str, Any]
) -> Job | None:
    """Move the next job by `scheduling` to running, as `claim.claim_parameters` say;
    return its row."""
    if scheduling.plain:
        return await claim_oldest_queued(conn, params)
    return await claim_fairly(conn, params, scheduling=scheduling)


async def claim_fairly(
    conn: AsyncConnection, params: dict[str, Any], *, scheduling: Scheduling
) -> Job | None:
    """Move the job `scheduling` picks to running; return its row (None: nothing queued,
    or every owner with queued jobs at its cap)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})
    stmt = built_once(
        conn.dialect.name, scheduling, lambda: fair_claim_statement(scheduling, CLAIM_VALUES)
    )
    row = (await conn.execute(stmt, params)).mappings().first()
    return Job.from_row(row) if row else None

"""A queued job's place under fair share: an estimate (API.md "Scheduling").

Jobs of a higher priority start first. Among jobs of the job's own priority p, owners
take turns: each next job goes to the owner with the fewest running jobs, and among
those to the one whose last start is longest ago (never first), then to the oldest
job (`vidq.db.fair_claim`). The estimate
assumes nothing finishes meanwhile, so each start raises its owner's running count by
one. If the job J is the k-th oldest of its owner O at p, and O has r_O running jobs,
J starts when O's count has reached L = r_O + k - 1 and O is the least busy; by then
every other owner X (r_X running, m_X queued at p) has had its count brought up to L:
min(m_X, max(0, L - r_X)) of its jobs start first, and one more if X then ties with O
at L and comes first in that round. Owners keep their order from round to round, so
if both (or neither) started jobs on the way to L, X comes first when it comes first
now (its last start longer ago, or both never and its oldest job older than J); if only
O did, X (whose last start is older) comes first; if only X did, O does. So

    place = (queued at a higher priority) + k + sum over X of min(m_X, max(0, L - r_X) + tie_X).

With one owner this is exactly the FIFO place. Jobs finishing (which lowers some counts
sooner than others) and VIDQ_MAX_RUNNING_PER_OWNER are not modelled: a capped owner's
jobs wait longer than shown and others' start sooner.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vidq.db.models import Job, table_of
from vidq.jobs.states import JobStatus

jobs = table_of(Job)
QUEUED = JobStatus.QUEUED.value
RUNNING = JobStatus.RUNNING.value


# An owner's place in a round: its last start (never: first), then its oldest job's seq.
TurnKey = tuple[float, int]


def as_utc(value: datetime | str | None) -> datetime | None:
    """A timestamp read by an aggregate, which SQLite gives back as text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def turn_key(last_started: datetime | None, seq: int) -> TurnKey:
    return (float("-inf") if last_started is None else last_started.timestamp(), seq)


def estimate_place(
    *,
    higher: int,
    own_index: int,
    own_running: int,
    own_turn: TurnKey,
    others: list[tuple[int, int, TurnKey]],
) -> int:
    """The formula above. `others`: (queued at p, running, turn key) of each other owner
    with jobs queued at p; `own_turn`: the job's owner's last start and the job's seq."""
    level = own_running + own_index - 1
    own_levels = own_index > 1
    ahead = 0
    for queued, running, turn in others:
        levels = running < level
        first = turn < own_turn if levels == own_levels else own_levels
        tie = 1 if running <= level and first else 0
        ahead += min(queued, max(0, level - running) + tie)
    return higher + own_index + ahead


async def moves_others(conn: AsyncConnection, job: Job, *, fair_share: bool) -> bool:
    """Whether queuing `job` moved other queued jobs back: some of a lower priority wait
    (with fair share, any other owner's job may)."""
    behind = jobs.c.priority < job.priority
    if fair_share:
        behind = jobs.c.owner_id != job.owner_id
    stmt = select(jobs.c.seq).where(jobs.c.status == QUEUED, behind).limit(1)
    return (await conn.execute(stmt)).first() is not None


async def fair_share_place(conn: AsyncConnection, job: Job) -> int:
    """The estimated place of a queued job under fair share (1: next to start)."""
    higher_stmt = select(func.count()).where(
        jobs.c.status == QUEUED, jobs.c.priority > job.priority
    )
    higher = int((await conn.execute(higher_stmt)).scalar_one())
    by_owner = (
        select(jobs.c.owner_id, func.count(), func.min(jobs.c.seq))
        .where(jobs.c.status == QUEUED, jobs.c.priority == job.priority)
        .group_by(jobs.c.owner_id)
    )
    queued = {owner: (int(n), int(oldest)) for owner, n, oldest in await conn.execute(by_owner)}
    running_stmt = (
        select(jobs.c.owner_id, func.count())
        .where(jobs.c.status == RUNNING)
        .group_by(jobs.c.owner_id)
    )
    running = {owner: int(n) for owner, n in await conn.execute(running_stmt)}
    last_stmt = (
        select(jobs.c.owner_id, func.max(jobs.c.started_at))
        .where(jobs.c.owner_id.in_([*queued, job.owner_id]))
        .group_by(jobs.c.owner_id)
    )
    last = {owner: as_utc(at) for owner, at in await conn.execute(last_stmt)}
    own_index_stmt = select(func.count()).where(
        jobs.c.owner_id == job.owner_id,
        jobs.c.status == QUEUED,
        jobs.c.priority == job.priority,
        jobs.c.seq <= job.seq,
    )
    own_index = int((await conn.execute(own_index_stmt)).scalar_one())
    others = [
        (n, running.get(owner, 0), turn_key(last.get(owner), oldest))
        for owner, (n, oldest) in queued.items()
        if owner != job.owner_id
    ]
    return estimate_place(
        higher=higher,
        own_index=max(1, own_index),
        own_running=running.get(job.owner_id, 0),
        own_turn=turn_key(last.get(job.owner_id), job.seq),
        others=others,
    )

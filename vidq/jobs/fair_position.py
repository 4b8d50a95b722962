"""A queued job's place under fair share: an estimate (API.md "Scheduling").

Jobs of a higher priority start first. Among jobs of the job's own priority p, owners
take turns: each next job goes to the owner with the fewest running jobs. The estimate
assumes nothing finishes meanwhile, so each start raises its owner's running count by
one. If the job J is the k-th oldest of its owner O at p, and O has r_O running jobs,
J starts when O's count has reached L = r_O + k - 1 and O is the least busy; by then
every other owner X (r_X running, m_X queued at p) has had its count brought up to L:
min(m_X, max(0, L - r_X)) of its jobs start first, and one more if X then ties with O
at L (r_X <= L) and X's oldest job at p is older than J (a tie goes to the oldest job;
X's oldest stands for the job X would start then). So

    place = (queued at a higher priority) + k + Σ_X min(m_X, max(0, L - r_X) + tie_X).

With one owner this is exactly the FIFO place. Jobs finishing (which lowers some counts
sooner than others) and VIDQ_MAX_RUNNING_PER_OWNER are not modelled: a capped owner's
jobs wait longer than shown and others' start sooner.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vidq.db.models import Job, table_of
from vidq.jobs.states import JobStatus

jobs = table_of(Job)
QUEUED = JobStatus.QUEUED.value
RUNNING = JobStatus.RUNNING.value


def estimate_place(
    *,
    higher: int,
    own_index: int,
    own_running: int,
    own_seq: int,
    others: list[tuple[int, int, int]],
) -> int:
    """The formula above. `others`: (queued at p, running, oldest seq at p) of each other
    owner with jobs queued at p."""
    level = own_running + own_index - 1
    ahead = 0
    for queued, running, oldest_seq in others:
        tie = 1 if running <= level and oldest_seq < own_seq else 0
        ahead += min(queued, max(0, level - running) + tie)
    return higher + own_index + ahead


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
    own_index_stmt = select(func.count()).where(
        jobs.c.owner_id == job.owner_id,
        jobs.c.status == QUEUED,
        jobs.c.priority == job.priority,
        jobs.c.seq <= job.seq,
    )
    own_index = int((await conn.execute(own_index_stmt)).scalar_one())
    others = [
        (n, running.get(owner, 0), oldest)
        for owner, (n, oldest) in queued.items()
        if owner != job.owner_id
    ]
    return estimate_place(
        higher=higher,
        own_index=max(1, own_index),
        own_running=running.get(job.owner_id, 0),
        own_seq=job.seq,
        others=others,
    )

"""The queue's statements on PostgreSQL with a deep queue: EXPLAIN ANALYZE of each.

A fresh database gets `--queued` queued jobs (100,000 by default) spread over
`--owners` owners with priorities from -2 to 2, as many finished jobs, and a few
running ones; then, each inside a transaction that is rolled back, the plan and timing
of: the plain claim (highest priority, then oldest: `vidq.db.claim`), the fair-share
claim with a per-owner cap (`vidq.db.fair_claim`), and a queued job's exact place
(`reads.queue_position`); then claims a second through `queue.claim_next` by 4
concurrent claimers, plain and with fair share and a cap (whose claims take turns on
an advisory lock). Usage: python bench/queue_plan.py [--queued N] [--owners N].
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from fleet import DEFAULT_DATABASE, claims_a_second, fresh_database
from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vidq.clock import utcnow
from vidq.db.claim import claim_statement
from vidq.db.fair_claim import Scheduling, fair_claim_statement
from vidq.db.migrate import migrated_database
from vidq.db.models import Job, table_of
from vidq.jobs.accounts import create_owner
from vidq.jobs.reads import place_statement

jobs = table_of(Job)
CLAIM_VALUES = {"status": "running", "worker_id": "bench", "lease_token": "x" * 36}


async def fill(database_url: str, queued: int, owners: int) -> None:
    rng = random.Random(1)
    async with migrated_database(database_url) as db:
        owner_ids = [(await create_owner(db, f"owner-{n}"))[0].id for n in range(owners)]
        now = utcnow()

        def row(n: int, status: str) -> dict[str, Any]:
            return {
                "id": str(uuid.uuid4()),
                "owner_id": rng.choice(owner_ids),
                "status": status,
                "priority": rng.choice((-2, -1, 0, 0, 0, 1, 2)),
                "created_at": now + timedelta(microseconds=n),
                "started_at": now if status != "queued" else None,
                "updated_at": now,
                "input_filename": "clip.mp4",
                "options": {},
                "metadata": {},
                "attempts": 0,
                "expired": False,
            }

        statuses = ["completed"] * queued + ["running"] * 20 + ["queued"] * queued
        async with db.write() as conn:
            for start in range(0, len(statuses), 2000):
                batch = [row(start + n, s) for n, s in enumerate(statuses[start : start + 2000])]
                await conn.execute(insert(jobs), batch)


def sql(statement: Any) -> str:
    return str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )


def explain(database_url: str, title: str, statement: str) -> None:
    with psycopg.connect(database_url) as conn:
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement).fetchall()
        conn.rollback()
    print(f"\n## {title}\n")
    print("\n".join(line for (line,) in plan))


CLAIMS = 1000


async def claim_rate(database_url: str, scheduling: Scheduling, concurrency: int) -> float:
    """Claims a second by `concurrency` tasks until CLAIMS are made (claims stay running,
    so under a cap of 2 per owner at most 2 x owners can be claimed)."""
    async with migrated_database(database_url) as db:
        return await claims_a_second(db, concurrency, claims=CLAIMS, scheduling=scheduling)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("VIDQ_BENCH_POSTGRES_URL", DEFAULT_DATABASE)
    )
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--owners", type=int, default=50)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}; {args.queued} queued, {args.owners} owners")
    with fresh_database(args.database_url) as database_url:
        asyncio.run(fill(database_url, args.queued, args.owners))
        # As autovacuum leaves a table in steady state: statistics and the visibility map.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE jobs")
            conn.execute("VACUUM ANALYZE owners")
        explain(database_url, "plain claim", sql(claim_statement("postgresql", CLAIM_VALUES)))
        capped = Scheduling(fair_share=True, max_running_per_owner=2)
        explain(
            database_url,
            "fair-share claim, at most 2 running per owner",
            sql(fair_claim_statement(capped, CLAIM_VALUES)),
        )
        with psycopg.connect(database_url) as conn:
            seq, priority = conn.execute(
                "SELECT seq, priority FROM jobs WHERE status = 'queued' AND priority = 0"
                " ORDER BY seq DESC LIMIT 1"
            ).fetchone() or (0, 0)
        place = select(place_statement(priority, seq))
        explain(database_url, "queue_position of the last job at priority 0", sql(place))
    print()
    for name, scheduling in (
        ("plain", Scheduling()),
        ("fair share", Scheduling(fair_share=True)),
        ("fair share, cap 1000", Scheduling(fair_share=True, max_running_per_owner=1000)),
    ):
        with fresh_database(args.database_url) as database_url:
            asyncio.run(fill(database_url, args.queued, args.owners))
            rate = asyncio.run(claim_rate(database_url, scheduling, 4))
        print(
            f"claim_next, {name}: {rate:.0f} claims/s (4 claimers, {args.queued} queued),"
            f" load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

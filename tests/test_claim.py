"""The claim on PostgreSQL: one statement on a connection of its own pool, in autocommit and
not pinged when taken, so a connection the server dropped fails one claim, harmlessly."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from vidq.db.migrate import migrated_database
from vidq.faults import is_transient
from vidq.jobs import queue, reads
from vidq.jobs.states import JobStatus

from .test_queue import _owner, new_job


async def test_a_claim_is_one_statement_outside_any_transaction(postgres_url: str) -> None:
    async with migrated_database(postgres_url) as db:
        owner = await _owner(db)
        job = await queue.submit(db, new_job(owner), max_unfinished=10)
        statements: list[str] = []
        event.listen(
            db.claim_engine.sync_engine,
            "before_cursor_execute",
            lambda _c, _cur, statement, *_: statements.append(statement),
        )
        claim = await queue.claim_next(db, worker_id="w", lease_seconds=30)
        assert claim is not None and claim.job.id == job.id
        assert len(statements) == 1 and statements[0].lstrip().startswith("UPDATE")
        # Committed on its own: another connection sees the job running at once.
        assert (await reads.get(db, job.id)).status == JobStatus.RUNNING


async def test_a_claim_on_a_dropped_connection_fails_transiently_and_the_next_one_claims(
    postgres_url: str,
) -> None:
    async with migrated_database(postgres_url) as db:
        owner = await _owner(db)
        job = await queue.submit(db, new_job(owner), max_unfinished=10)
        async with db.one_statement() as conn:  # a claim connection, pooled afterwards
            backend = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with db.write() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        with pytest.raises(Exception) as failed:
            await queue.claim_next(db, worker_id="w", lease_seconds=30)
        assert is_transient(failed.value)
        assert (await reads.get(db, job.id)).status == JobStatus.QUEUED
        claim = await queue.claim_next(db, worker_id="w", lease_seconds=30)
        assert claim is not None and claim.job.id == job.id and claim.job.attempts == 1

"""Status polls (`GET /job/{id}`) answered with one question to the database.

A poll is what every client of the API sends most, so it is answered here without the
general machinery: one SELECT (through `vidq.db.quick_read`) reads the API key's owner,
the job (if that owner has it) and, while it is queued, its place in the queue. A job
with a webhook or an email to notify takes one more, for the delivery states. On
PostgreSQL the polls waiting at the same moment share one SELECT (`_Batches`).

The rendered answer (the JSON body and its ETag) is kept per job and reused while the
row read **now** is exactly the one it was rendered from (every column, the queue place,
the delivery states and the base URL compared): a change made by any process, through
any path, is seen by the next poll, because nothing but the rendering is reused. Keys
are not cached either: a revoked key is refused by the next request.

`answer` returns None whenever the ordinary route must answer instead: no such key, no
such job (for this owner), a key whose use is due to be noted (`last_used_at`, once a
minute), or a database the quick reader cannot ask just now. The ordinary route then
gives the exact same answer, or the error, the usual way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vidq.clock import utcnow
from vidq.db.database import Database
from vidq.db.models import ApiKey, Job, UTCDateTime, table_of
from vidq.db.quick_read import (
    PG_CONNECTIONS,
    Answer,
    QuickReader,
    Row,
    process,
    processors,
    quick_reader,
)
from vidq.jobs.accounts import LAST_USED_RESOLUTION
from vidq.jobs.states import JobStatus
from vidq.jobs.views import etag, job_view

jobs = table_of(Job)
api_keys = table_of(ApiKey)

# Rendered answers kept (one per job and base URL); the oldest go first past this.
MAX_KEPT = 4096


def render_json(document: Any) -> bytes:
    """The JSON bytes of an answer: exactly what Starlette's JSONResponse sends."""
    return json.dumps(
        document, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


@dataclass(frozen=True)
class PollAnswer:
    """A job's Job document as sent: status (for Retry-After), ETag and body."""

    status: str
    etag: str
    body: bytes


@dataclass(frozen=True)
class Polled:
    """Who asked (the key's hash, for the rate limit) and the answer."""

    key_hash: str
    answer: PollAnswer


@dataclass(frozen=True)
class _Kept:
    row: Row
    queue_position: int | None
    notes: tuple[Row, ...]
    answer: PollAnswer


def _question(reader: QuickReader, *, many: bool) -> str:
    """SELECT the key's last use, the job's queue place and the job's columns: for one
    (key hash, job id) or, `many` (PostgreSQL), for arrays of both, numbered from 1."""
    p = reader.placeholder
    queued = JobStatus.QUEUED.value
    columns = ", ".join(f'j."{column.name}"' for column in jobs.c)
    place = (
        f"CASE WHEN j.status = '{queued}' THEN (SELECT count(*) "
        f"FROM jobs q WHERE q.status = '{queued}' AND (q.priority > j.priority"
        " OR (q.priority = j.priority AND q.seq <= j.seq))) END"
    )
    joined = "JOIN owners o ON o.id = k.owner_id LEFT JOIN jobs j ON j.owner_id = o.id AND j.id ="
    if many:
        return (
            f"SELECT r.n, k.last_used_at, {place}, {columns} FROM unnest("
            f"{p('key_hashes')}::text[], {p('job_ids')}::text[]) WITH ORDINALITY "
            f"AS r(key_hash, job_id, n) JOIN api_keys k ON k.key_hash = r.key_hash {joined} r.job_id"
        )
    return (
        f"SELECT k.last_used_at, {place}, {columns} FROM api_keys k {joined} {p('job_id')} "
        f"WHERE k.key_hash = {p('key_hash')}"
    )


class _Batches:
    """Polls waiting for PostgreSQL, asked together: each round trip answers every poll
    that arrived while the one before was out (at most `PG_CONNECTIONS` out at once). A
    poll is still read after it arrived: batching saves round trips, never freshness."""

    def __init__(self, reader: QuickReader, sql: str) -> None:
        self.reader = reader
        self.sql = sql
        self._pending: list[tuple[str, str, asyncio.Future[Answer | None]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def ask(self, key_hash: str, job_id: str) -> Answer | None:
        answered: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        self._pending.append((key_hash, job_id, answered))
        if len(self._running) < PG_CONNECTIONS:
            task = asyncio.create_task(self._drain())
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return await answered

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # the polls that arrived in this turn of the loop join
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                found = await self.reader.fetch(
                    self.sql,
                    {"key_hashes": [b[0] for b in batch], "job_ids": [b[1] for b in batch]},
                )
            except BaseException:
                for *_, answered in batch:
                    answered.cancel()
                raise
            by_number: dict[int, list[Row]] = {}
            if found is not None:
                for row in found[0]:
                    by_number.setdefault(int(row[0]), []).append(tuple(row[1:]))
            for number, (*_, answered) in enumerate(batch, 1):
                if not answered.done():
                    answered.set_result(
                        None if found is None else (by_number.get(number, []), found[1][1:])
                    )


class Polls:
    """Answers polls for one process; see the module docstring."""

    def __init__(self, db: Database, signing_key: str) -> None:
        self.db = db
        self.signing_key = signing_key
        self.reader = quick_reader(db)
        self._kept: OrderedDict[tuple[str, str], _Kept] = OrderedDict()
        self._job_converters: list[Callable[[Any], Any] | None] | None = None
        self._names = [column.name for column in jobs.c]
        self._targets = (self._names.index("webhook_url"), self._names.index("email"))
        # A key's last_used_at, as SQLAlchemy reads it (a UTC datetime).
        self.dialect = db.read_engine.dialect
        self._last_used = UTCDateTime().dialect_impl(self.dialect)
        self._last_used_at: Callable[[Any], Any] | None = None
        self._batches: _Batches | None = None
        if self.reader is not None:
            p = self.reader.placeholder
            self._sql = _question(self.reader, many=False)
            if db.is_postgres:
                self._batches = _Batches(self.reader, _question(self.reader, many=True))
            self._notes_sql = (
                "SELECT channel, status, attempts, last_error FROM notifications "
                f"WHERE job_id = {p('job_id')} ORDER BY channel"
            )

    async def answer(self, key: str, job_id: str, *, base_url: str) -> Polled | None:
        """The answer to a poll of `job_id` with API key `key`, or None: ask the usual way."""
        if self.reader is None:
            return None
        key_hash = hashlib.sha256(key.encode()).hexdigest()
        if self._batches is not None:
            found = await self._batches.ask(key_hash, job_id)
        else:
            found = await self.reader.fetch(self._sql, {"job_id": job_id, "key_hash": key_hash})
        if not found or not found[0]:
            return None  # an unknown key (or no answer now)
        rows, types = found
        last_used_raw, place, *row = rows[0]
        if row[0] is None:
            return None  # no such job of this owner
        if self._job_converters is None:  # the driver's types are known from now on
            self._last_used_at = self._last_used.result_processor(self.dialect, types[0])
            self._job_converters = processors(self.db, jobs, types[2:])
        last_used = last_used_raw
        if self._last_used_at is not None:
            last_used = self._last_used_at(last_used_raw)
        if last_used is None or utcnow() - last_used >= LAST_USED_RESOLUTION:
            return None  # the route notes the key's use
        job_row = tuple(row)
        queue_position = None if place is None else max(1, int(place))
        notes: tuple[Row, ...] = ()
        if any(job_row[at] is not None for at in self._targets):
            found = await self.reader.fetch(self._notes_sql, {"job_id": job_id})
            if found is None:
                return None
            notes = tuple(tuple(note) for note in found[0])
        cache_key = (job_id, base_url)
        kept = self._kept.get(cache_key)
        if (
            kept is not None
            and kept.row == job_row
            and kept.queue_position == queue_position
            and kept.notes == notes
        ):
            return Polled(key_hash, kept.answer)
        answer = self._render(job_row, queue_position, notes, base_url)
        self._kept[cache_key] = _Kept(job_row, queue_position, notes, answer)
        self._kept.move_to_end(cache_key)
        while len(self._kept) > MAX_KEPT:
            self._kept.popitem(last=False)
        return Polled(key_hash, answer)

    def _render(
        self, row: Row, queue_position: int | None, notes: tuple[Row, ...], base_url: str
    ) -> PollAnswer:
        assert self._job_converters is not None
        values = process(row, self._job_converters)
        job = Job.from_row(dict(zip(self._names, values, strict=True)))
        delivery = [
            {"channel": c, "status": s, "attempts": a, "last_error": e} for c, s, a, e in notes
        ]
        document = job_view(
            job,
            base_url=base_url,
            secret=self.signing_key,
            queue_position=queue_position,
            notifications=delivery,
        )
        return PollAnswer(
            status=document["status"], etag=etag(document), body=render_json(document)
        )

    async def close(self) -> None:
        if self.reader is not None:
            await self.reader.close()

"""Reads that skip the async engine, for the API's hottest question: a status poll.

Through SQLAlchemy's async engine one small SELECT on SQLite costs several thread hops
(aiosqlite runs each call in a thread: begin, execute, fetch, rollback), and on
PostgreSQL a pool checkout with its ping. A poll asks one indexed question, so it is
asked here more directly:

- **SQLite**: with the standard `sqlite3` module, on the event loop's own thread, through
  one connection of this process (`query_only`). In WAL mode a reader never waits for the
  writer; the busy timeout is 0, so in the rare case the file is locked (a recovery) the
  read fails at once instead of stalling the loop, and the caller asks the normal way.
- **PostgreSQL**: with a few psycopg connections of its own (autocommit, prepared
  statements), one round trip per question; the caller may ask many questions in one
  (`vidq.jobs.polls` asks for all the polls waiting at that moment at once).

Every answer is read from the database at the time of the question: nothing is cached
here, so what another process wrote is seen at once. `fetch` returns None whenever it
cannot answer (no connection, an error): the caller then takes the ordinary path, which
reports the problem the usual way. Values come back raw (as the driver gives them);
`processors` turns a table's raw values into what SQLAlchemy would have returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from sqlalchemy import Table
from sqlalchemy.engine import make_url

from vidq.db.database import SELECT_DATABASE_ID, Database

log = logging.getLogger("vidq.db")

# Connections the PostgreSQL reader keeps (requests beyond wait for one: a poll is short).
PG_CONNECTIONS = 4

Row = tuple[Any, ...]
Answer = tuple[list[Row], list[Any]]


def processors(
    db: Database, table: Table, types: Sequence[Any]
) -> list[Callable[[Any], Any] | None]:
    """For each column of `table` in order, what turns the raw driver value into the one
    SQLAlchemy returns (None: the value as is); `types` are the driver's type codes of the
    columns as read (what `QuickReader.fetch` returns with the rows), which some dialects need."""
    dialect = db.read_engine.dialect
    return [
        column.type.dialect_impl(dialect).result_processor(dialect, coltype)
        for column, coltype in zip(table.c, types, strict=True)
    ]


def process(row: Sequence[Any], converters: Sequence[Callable[[Any], Any] | None]) -> list[Any]:
    """Raw values converted as `processors` says."""
    return [value if f is None else f(value) for value, f in zip(row, converters, strict=True)]


class QuickReader:
    """One question at a time, answered from the database now; see the module docstring."""

    placeholder: Callable[[str], str]

    async def fetch(self, sql: str, params: Mapping[str, Any]) -> Answer | None:
        """The rows, and the driver's type code of each column (cursor.description)."""
        raise NotImplementedError

    async def close(self) -> None:
        return None


class SqliteReader(QuickReader):
    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: sqlite3.Connection | None = None
        self.placeholder = lambda name: f":{name}"

    def _connect(self) -> sqlite3.Connection:
        assert self.db.sqlite_path is not None
        conn = sqlite3.connect(self.db.sqlite_path, timeout=0, isolation_level=None)
        conn.execute("PRAGMA query_only = ON")
        return conn

    async def fetch(self, sql: str, params: Mapping[str, Any]) -> Answer | None:
        # A removed or replaced file raises here (DatabaseReplaced), as every read does.
        self.db.check_same()
        try:
            if self._conn is None:
                self._conn = self._connect()
            cursor = self._conn.execute(sql, params)
            return cursor.fetchall(), [column[1] for column in cursor.description]
        except sqlite3.Error as exc:
            log.debug("quick read failed (%r); asking the usual way", exc)
            await self.close()
            return None

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None


class PostgresReader(QuickReader):
    def __init__(self, db: Database, size: int = PG_CONNECTIONS) -> None:
        self.db = db
        self.conninfo = make_url(db.url).set(drivername="postgresql").render_as_string(False)
        self.placeholder = lambda name: f"%({name})s"
        self._slots: asyncio.LifoQueue[psycopg.AsyncConnection[Any] | None] | None = None
        self._size = size
        self._open: set[psycopg.AsyncConnection[Any]] = set()
        self._closing: asyncio.Future[None] | None = None

    async def _connect(self) -> psycopg.AsyncConnection[Any] | None:
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, prepare_threshold=0
        )
        # As for the engine's connections: never read a database other than the one opened.
        row = await (await conn.execute(SELECT_DATABASE_ID)).fetchone()
        if row is None or row[0] != self.db.database_id:
            await conn.close()
            return None
        return conn

    async def fetch(self, sql: str, params: Mapping[str, Any]) -> Answer | None:
        if self.db.replaced is not None:
            return None
        if self._slots is None:
            self._slots = asyncio.LifoQueue()
            for _ in range(self._size):
                self._slots.put_nowait(None)
        slot = await self._slots.get()
        conn = slot
        try:
            if conn is None:
                conn = await self._connect()
                if conn is None:
                    return None
                self._open.add(conn)
            cursor = await conn.execute(sql, params)
            rows = await cursor.fetchall()
            return rows, [column.type_code for column in cursor.description or ()]
        except BaseException as exc:
            # Broken, or left mid-question by a cancelled request: never handed out again.
            if conn is not None:
                self._open.discard(conn)
                self._closing = asyncio.ensure_future(_close_quietly(conn))
            conn = None
            if not isinstance(exc, psycopg.Error):
                raise
            log.debug("quick read failed (%r); asking the usual way", exc)
            return None
        finally:
            self._slots.put_nowait(conn)

    async def close(self) -> None:
        for conn in list(self._open):
            with contextlib.suppress(psycopg.Error):
                await conn.close()
        self._open.clear()
        self._slots = None


async def _close_quietly(conn: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(psycopg.Error):
        await conn.close()


def quick_reader(db: Database) -> QuickReader | None:
    """The quick reader for this database; None for an in-memory SQLite one."""
    if db.is_postgres:
        return PostgresReader(db)
    if db.sqlite_path is None:
        return None
    return SqliteReader(db)

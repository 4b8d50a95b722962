"""Connections: one async engine per role, SQLite tuned for one writer and many readers.

Every read and write makes sure the database is still the one this process opened, and
raises `DatabaseReplaced` if not, for good: a SQLite file removed or replaced under a
running process would otherwise take every write into a file no other process, and no
restart, sees. On SQLite each transaction first compares the file at the path with the
one first seen (a stat, microseconds). On PostgreSQL each new connection reads the
database's `database_id` (vidq.db.server_settings): a connection never changes database,
so a dropped and re-made one is caught before any statement reaches it. `ping` checks
both, for /readyz.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from vidq.db import server_settings
from vidq.errors import DatabaseReplaced

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_IDLE_IN_TRANSACTION_MS = 60_000
# Connections kept for claims (made as needed; each worker makes one claim at a time), and
# more at a burst: one given back beyond the pool is closed, so the pool covers the workers.
PG_CLAIM_POOL = 16
PG_CLAIM_OVERFLOW = 16

SELECT_DATABASE_ID = (
    f"SELECT value FROM server_settings WHERE name = '{server_settings.DATABASE_ID}'"
)
FILE_REPLACED = (
    "The database file {name} was removed or replaced while vidq was running; restart vidq "
    "(and restore the file from a backup if it was lost)."
)
NO_TABLES = (
    "The database has no vidq tables any more: it was dropped or replaced while vidq was "
    "running; restart vidq."
)
ID_CHANGED = (
    "The database is not the one vidq opened (its database_id changed): it was replaced "
    "while vidq was running; restart vidq."
)


def async_url(url: str) -> str:
    """The URL with the async driver vidq uses for its dialect."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(
        f"unsupported database URL {parsed.drivername!r}: use sqlite:// or postgresql://"
    )


def sync_url(url: str) -> str:
    """The URL with the blocking driver (for migrations)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite database URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def sqlite_files(url: str) -> list[Path]:
    """The files of a SQLite database (with its -wal and -shm); none for other databases."""
    path = sqlite_path(url)
    if path is None:
        return []
    return [path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")]


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, or None if there is none."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def _tune_sqlite(engine: AsyncEngine, *, immediate: bool) -> None:
    """WAL, a busy timeout, and transactions we begin ourselves (IMMEDIATE for writers)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below emit BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """The job store's connections. `write()` for changes, `read()` for queries.

    On SQLite every write transaction starts with BEGIN IMMEDIATE through a single
    pooled connection, so writers queue in the pool instead of failing with
    "database is locked"; readers use their own pool and WAL lets them run alongside.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self.sqlite_path = sqlite_path(url)
        # The SQLite file as first seen; a different file (or none) at its path later means
        # the database was removed or replaced under this process.
        self._file_identity: tuple[int, int] | None = None
        # The database's `database_id` once the process has adopted it (`adopt_id`).
        self.database_id: str | None = None
        # Why the database is not the one opened, once found out: every use fails after.
        self.replaced: str | None = None
        aurl = async_url(url)
        if self.dialect == "sqlite":
            if self.sqlite_path is not None:
                self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
                self._file_identity = _file_identity(self.sqlite_path)
            self.write_engine = create_async_engine(
                aurl, pool_size=1, max_overflow=0, pool_timeout=60
            )
            self.read_engine = create_async_engine(aurl, pool_size=8, max_overflow=4)
            self.claim_engine = self.write_engine  # `one_statement` uses `write` there
            _tune_sqlite(self.write_engine, immediate=True)
            _tune_sqlite(self.read_engine, immediate=False)
        else:
            engine = create_async_engine(
                aurl,
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                # A process frozen mid-transaction must not hold row locks forever.
                connect_args={
                    "options": f"-c idle_in_transaction_session_timeout={PG_IDLE_IN_TRANSACTION_MS}"
                },
            )
            self.write_engine = self.read_engine = engine
            event.listen(engine.sync_engine, "connect", self._check_new_connection)
            # Claims: one statement each, on connections that commit it on their own and are
            # not pinged at checkout (see `one_statement`).
            self.claim_engine = create_async_engine(
                aurl,
                pool_size=PG_CLAIM_POOL,
                max_overflow=PG_CLAIM_OVERFLOW,
                isolation_level="AUTOCOMMIT",
            )
            event.listen(self.claim_engine.sync_engine, "connect", self._check_new_connection)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A short write transaction, committed on success; never into a replaced database."""
        self._check_same()
        async with self.write_engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def one_statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for a single statement that is its own transaction (a claim).

        On PostgreSQL the statement is the only round trip: the connection is in autocommit
        (no BEGIN, no COMMIT) and is not pinged when taken from its pool. A connection the
        server dropped (a restart) fails the statement, which then did nothing; the pool is
        renewed and the caller's next try gets a live one. On SQLite, `write()`.
        """
        if not self.is_postgres:
            async with self.write() as conn:
                yield conn
            return
        self._check_same()
        async with self.claim_engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction."""
        self._check_same()
        async with self.read_engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        """Raise if the database does not answer; DatabaseReplaced if it is not the one opened."""
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))
            if self.database_id is None:
                return
            try:
                found = await server_settings.value(conn, server_settings.DATABASE_ID)
            except ProgrammingError as exc:  # PostgreSQL: no such table
                raise self._replaced(NO_TABLES) from exc
            if found != self.database_id:
                raise self._replaced(ID_CHANGED)

    async def adopt_id(self) -> tuple[str, bool]:
        """This database's `database_id` (made now if it has none; True then), which from now
        on every new connection and every ping checks is still there."""
        database_id, made = await server_settings.made_once(
            self, server_settings.DATABASE_ID, server_settings.new_database_id
        )
        self.database_id = database_id
        return database_id, made

    def _replaced(self, detail: str) -> DatabaseReplaced:
        self.replaced = detail
        return DatabaseReplaced(detail)

    def check_same(self) -> None:
        """Raise DatabaseReplaced as a read would (for readers that skip the engines)."""
        self._check_same()

    def _check_same(self) -> None:
        """DatabaseReplaced if the database was found replaced, or (SQLite) the file at the
        path is not the one first seen."""
        if self.replaced is not None:
            raise DatabaseReplaced(self.replaced)
        if self.sqlite_path is None:
            return
        found = _file_identity(self.sqlite_path)
        if self._file_identity is None:
            self._file_identity = found  # not made yet when this object was: the first one
        elif found != self._file_identity:
            raise self._replaced(FILE_REPLACED.format(name=self.sqlite_path.name))

    def _check_new_connection(self, dbapi_connection: Any, _record: Any) -> None:
        """PostgreSQL: refuse a new connection to a database without the adopted id."""
        if self.database_id is None:
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(SELECT_DATABASE_ID)
            row = cursor.fetchone()
        except psycopg.errors.UndefinedTable:
            row, detail = None, NO_TABLES
        else:
            detail = ID_CHANGED
        finally:
            cursor.close()
            dbapi_connection.rollback()
        if row is None or row[0] != self.database_id:
            dbapi_connection.close()
            raise self._replaced(detail)

    async def close(self) -> None:
        if self.claim_engine is not self.write_engine:
            await self.claim_engine.dispose()
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()

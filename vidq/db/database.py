"""Connections: one async engine per role, SQLite tuned for one writer and many readers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_IDLE_IN_TRANSACTION_MS = 60_000


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
        aurl = async_url(url)
        if self.dialect == "sqlite":
            database = make_url(url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = create_async_engine(
                aurl, pool_size=1, max_overflow=0, pool_timeout=60
            )
            self.read_engine = create_async_engine(aurl, pool_size=8, max_overflow=4)
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

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A short write transaction, committed on success."""
        async with self.write_engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction."""
        async with self.read_engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        """Raise if the database does not answer."""
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()

"""Schema migrations with Alembic, run at start-up by every vidq process."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from vidq.datadir import DIR_MODE, FILE_MODE
from vidq.db.database import Database, sqlite_path, sync_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any number; every vidq process takes it so that only one migrates at a time.
_PG_MIGRATION_LOCK = 0x76696471


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at vidq's migrations (and a connection, if given)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def migrate_sync(url: str) -> None:
    """Bring the database at `url` to the newest schema."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        # Made private whatever the umask; SQLite gives its -wal and -shm the same mode.
        # Only a new file: closing a descriptor of a database this process has open would
        # drop every POSIX lock SQLite holds on it here, and another process could then
        # reset the WAL under this one's readers.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    engine = create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                connection.commit()
            try:
                command.upgrade(alembic_config(connection), "head")
                connection.commit()
            finally:
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                    connection.commit()
    finally:
        engine.dispose()


async def migrate(url: str) -> None:
    """Async wrapper: migrations use a blocking driver, so run them in a thread."""
    await asyncio.to_thread(migrate_sync, url)


@asynccontextmanager
async def migrated_database(url: str) -> AsyncIterator[Database]:
    """The database at `url`, brought to the newest schema, closed on exit."""
    await migrate(url)
    database = Database(url)
    try:
        yield database
    finally:
        await database.close()

"""Schema migrations with Alembic, run at start-up by every vidq process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import NullPool

from vidq.db.database import Database, sync_url

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
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
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

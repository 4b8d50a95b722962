"""The migrations and the models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from vidq.db.database import sync_url
from vidq.db.migrate import migrate_sync
from vidq.db.models import Base


def test_migrations_match_models(db_url: str) -> None:
    migrate_sync(db_url)
    migrate_sync(db_url)  # a second run is a no-op
    engine = create_engine(sync_url(db_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []

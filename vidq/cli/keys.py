"""`vidq keys create|list|revoke`: API keys, on the database directly (as `vidq serve` finds
it: --data-dir, --database-url and their VIDQ_* variables). A key is shown once, when it is
made; afterwards only its id (the first hex digits of its hash) and its dates."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from vidq import datadir
from vidq.cli.display import human_age, print_table
from vidq.cli.failures import UNREACHABLE, USAGE, CommandFailed
from vidq.clock import rfc3339
from vidq.config import Settings
from vidq.errors import Conflict, NotFound


async def _create_key(settings: Settings, name: str) -> str:
    from vidq.db.database import sqlite_files
    from vidq.db.migrate import migrated_database
    from vidq.jobs.accounts import add_key

    url = settings.resolved_database_url
    datadir.secure(settings.data_dir, also=sqlite_files(url))
    async with migrated_database(url) as db:
        _, key = await add_key(db, name)
    return key


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    key = asyncio.run(_create_key(settings, args.name))
    print(f"API key for {args.name}:")
    print(key)
    return 0


def _existing_database(settings: Settings) -> str:
    """The database URL, refusing a SQLite file that is not there (listing or revoking
    keys must not make an empty database where the real one was expected)."""
    from vidq.db.database import sqlite_path

    url = settings.resolved_database_url
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise CommandFailed(
            f"No vidq database at {path}: give the data directory with --data-dir or "
            "VIDQ_DATA_DIR (or the database with --database-url).",
            USAGE,
        )
    return url


async def _list_keys(url: str) -> list[Any]:
    from vidq.db.migrate import migrated_database
    from vidq.jobs.accounts import list_keys

    async with migrated_database(url) as db:
        return await list_keys(db)


async def _revoke_key(url: str, key_id: str) -> Any:
    from vidq.db.migrate import migrated_database
    from vidq.jobs.accounts import revoke_key

    async with migrated_database(url) as db:
        return await revoke_key(db, key_id)


def _on_database(run: Any) -> Any:
    """Run a coroutine on the database; a database that cannot be opened is one line."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return asyncio.run(run)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        reason = (str(cause).splitlines() or [type(cause).__name__])[0]
        raise CommandFailed(f"Cannot use the database: {reason}.", UNREACHABLE) from None


def cmd_keys_list(args: argparse.Namespace, settings: Settings) -> int:
    keys = _on_database(_list_keys(_existing_database(settings)))
    if args.json:
        document = {
            "keys": [
                {
                    "owner": k.owner,
                    "key_id": k.key_id,
                    "created_at": rfc3339(k.created_at),
                    "last_used_at": rfc3339(k.last_used_at),
                }
                for k in keys
            ]
        }
        print(json.dumps(document))
        return 0
    if not keys:
        print("No API keys: make one with `vidq keys create NAME`.")
        return 0
    rows = [
        (
            k.owner,
            k.key_id,
            f"{rfc3339(k.created_at)}",
            f"{human_age(rfc3339(k.last_used_at))} ago" if k.last_used_at else "never",
        )
        for k in keys
    ]
    print_table(("OWNER", "KEY ID", "CREATED", "LAST USED"), rows)
    return 0


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    url = _existing_database(settings)
    try:
        info = _on_database(_revoke_key(url, args.key_id))
    except (NotFound, Conflict) as exc:
        raise CommandFailed(f"{exc.detail} `vidq keys list` shows the ids.", USAGE) from None
    if args.json:
        print(json.dumps({"owner": info.owner, "key_id": info.key_id}))
    else:
        print(f"Revoked key {info.key_id} of {info.owner}: requests with it now get 401.")
    return 0


KEYS_EPILOG = """\
examples:
  vidq keys create alice          # prints alice's new key as its last line
  vidq keys list                  # owner, key id, created, last used (never the key)
  vidq keys revoke 3f9a1c0b7e2d   # that key is refused from now on

These work on the database directly, found as `vidq serve` finds it (--data-dir,
--database-url, VIDQ_DATA_DIR, VIDQ_DATABASE_URL); run them where the service runs."""

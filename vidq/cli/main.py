"""The `vidq` command: serve, api, worker, migrate, keys. Every setting is a flag and a VIDQ_* variable."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from pydantic import ValidationError

from vidq import datadir
from vidq.cli.client_verbs import add_client_verbs, run_command
from vidq.config import Settings

log = logging.getLogger("vidq")

NO_FIRST_KEY = (
    "the database has no API key, but it or the data directory %s was in use before: "
    "no first key is made, and api-key is left as it is. If the database was lost, stop "
    "vidq and restore it from a backup; if it is meant to start afresh, make a key with "
    "`vidq keys create NAME`"
)


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting: `--max-upload-bytes` for VIDQ_MAX_UPLOAD_BYTES, and so on."""
    for name, info in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(
            flag, dest=name, default=None, metavar=name.upper(), help=info.description
        )


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the flags given; exit with a clear message if invalid."""
    overrides: dict[str, Any] = {
        name: getattr(args, name)
        for name in Settings.model_fields
        if getattr(args, name, None) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            lines.append(f"  VIDQ_{field.upper()} (--{field.replace('_', '-')}): {error['msg']}")
        sys.exit("vidq: invalid settings:\n" + "\n".join(lines))


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Alembic reports every step of every start-up at INFO; only its problems matter here.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    # httpx logs every request's full URL at INFO; webhook URLs often carry secret tokens.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))


async def _ensure_first_key(settings: Settings) -> str | None:
    """On a new data directory (no database and no files yet), make the first owner and
    key and write it to <data-dir>/api-key; anywhere else make none, and say why if the
    database has no key."""
    from vidq.db.database import sqlite_files
    from vidq.db.migrate import migrated_database
    from vidq.jobs.accounts import create_owner, owner_count

    url = settings.resolved_database_url
    new_data_dir = datadir.is_new(settings.data_dir)
    datadir.secure(settings.data_dir, also=sqlite_files(url))
    async with migrated_database(url) as db:
        _, new_database = await db.adopt_id()
        if await owner_count(db) > 0:
            return None
        if not (new_data_dir and new_database):
            log.warning(NO_FIRST_KEY, settings.data_dir)
            return None
        _, key = await create_owner(db, "default")
    try:
        datadir.write_private(settings.data_dir / datadir.API_KEY_FILE, key + "\n")
    except FileExistsError:
        log.error(
            "%s exists already: it is left as it is", settings.data_dir / datadir.API_KEY_FILE
        )
    return key


def _serve_http(settings: Settings, *, run_workers: bool) -> None:
    from vidq.api.connections import raise_open_file_limit
    from vidq.api.serving import http_server

    # Every connection is an open file: take all the process may have before sizing limits.
    raise_open_file_limit()
    http_server(settings, run_workers=run_workers).run()


def cmd_serve(args: argparse.Namespace) -> None:
    datadir.private_by_default()
    settings = load_settings(args)
    _setup_logging(settings)
    key = asyncio.run(_ensure_first_key(settings))
    if key:
        print(
            f"Created the first API key; it is also in {settings.data_dir / datadir.API_KEY_FILE}:",
            flush=True,
        )
        print(key, flush=True)
    print(
        f"vidq listening on http://{settings.host}:{settings.port} (workers: {settings.workers})",
        flush=True,
    )
    _serve_http(settings, run_workers=True)


def cmd_api(args: argparse.Namespace) -> None:
    datadir.private_by_default()
    settings = load_settings(args)
    _setup_logging(settings)
    _serve_http(settings, run_workers=False)


async def _run_workers(settings: Settings) -> None:
    from vidq.service import running_service

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_service(settings, workers=max(1, settings.workers), notify=True) as service:
        assert service.pool is not None
        log.info("vidq worker running %d conversion slot(s)", len(service.pool.workers))
        await stop.wait()


def cmd_worker(args: argparse.Namespace) -> None:
    datadir.private_by_default()
    settings = load_settings(args)
    _setup_logging(settings)
    asyncio.run(_run_workers(settings))


def cmd_migrate(args: argparse.Namespace) -> None:
    """Bring the configured database to the newest schema and exit. Only a SQLite database
    touches the data directory: on PostgreSQL it runs on a read-only filesystem."""
    from vidq.db.database import sqlite_files
    from vidq.db.migrate import migrate_sync

    datadir.private_by_default()
    settings = load_settings(args)
    _setup_logging(settings)
    url = settings.resolved_database_url
    if sqlite_files(url):
        datadir.secure(settings.data_dir, also=sqlite_files(url))
    migrate_sync(url)
    print("vidq: the database is at the newest schema", flush=True)


async def _create_key(settings: Settings, name: str) -> str:
    from vidq.db.database import sqlite_files
    from vidq.db.migrate import migrated_database
    from vidq.jobs.accounts import add_key

    url = settings.resolved_database_url
    datadir.secure(settings.data_dir, also=sqlite_files(url))
    async with migrated_database(url) as db:
        _, key = await add_key(db, name)
    return key


def cmd_keys_create(args: argparse.Namespace) -> None:
    datadir.private_by_default()
    settings = load_settings(args)
    key = asyncio.run(_create_key(settings, args.name))
    print(f"API key for {args.name}:")
    print(key)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidq", description="A self-hosted video conversion service."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="API, web page and workers in one process")
    _add_setting_flags(serve)
    serve.set_defaults(func=cmd_serve)

    api = commands.add_parser("api", help="the HTTP API alone (a fleet's front)")
    _add_setting_flags(api)
    api.set_defaults(func=cmd_api)

    worker = commands.add_parser("worker", help="conversion workers alone (a fleet's back)")
    _add_setting_flags(worker)
    worker.set_defaults(func=cmd_worker)

    migrate = commands.add_parser(
        "migrate",
        help="bring the database to the newest schema and exit (every process also does at start)",
    )
    _add_setting_flags(migrate)
    migrate.set_defaults(func=cmd_migrate)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser(
        "create", help="a new owner (or a new key for one); prints the key last"
    )
    create.add_argument("name")
    _add_setting_flags(create)
    create.set_defaults(func=cmd_keys_create)

    add_client_verbs(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run_command(args)


if __name__ == "__main__":
    main()

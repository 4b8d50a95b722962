"""The `vidq` command: serve, api, worker, migrate, keys. Every setting is a flag and a VIDQ_* variable."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any, NoReturn

from pydantic import ValidationError

from vidq import datadir
from vidq.cli.client_verbs import WHERE, add_client_verbs, client_flags, run_client_verb
from vidq.cli.failures import EXIT_STATUSES, INTERRUPTED, USAGE, CommandFailed
from vidq.cli.keys import KEYS_EPILOG, cmd_keys_create, cmd_keys_list, cmd_keys_revoke
from vidq.config import Settings

log = logging.getLogger("vidq")

# What `keys list` and `keys revoke` read: where the database is, nothing else.
DATABASE_SETTINGS = ("data_dir", "database_url")

TOP_EPILOG = f"""\
examples:
  vidq serve                                  # the service on http://127.0.0.1:8000
  vidq convert holiday.mov --wait             # upload, convert, save ./holiday.mp4
  vidq jobs                                   # your jobs, newest first
  vidq COMMAND --help                         # each command's options and examples

{WHERE}

{EXIT_STATUSES}"""

NO_FIRST_KEY = (
    "the database has no API key, but it or the data directory %s was in use before: "
    "no first key is made, and api-key is left as it is. If the database was lost, stop "
    "vidq and restore it from a backup; if it is meant to start afresh, make a key with "
    "`vidq keys create NAME`"
)


def _add_setting_flags(
    parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None
) -> None:
    """One flag per setting (or per setting in `only`): `--max-upload-bytes` for
    VIDQ_MAX_UPLOAD_BYTES, and so on."""
    for name, info in Settings.model_fields.items():
        if only is not None and name not in only:
            continue
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
        print("vidq: invalid settings:\n" + "\n".join(lines), file=sys.stderr)
        sys.exit(USAGE)


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


def _serve_http(settings: Settings, *, run_workers: bool, process_index: int | None) -> None:
    from vidq.api.connections import raise_open_file_limit
    from vidq.api.serving import http_server
    from vidq.cli.processes import child_settings, reuse_port_socket

    # Every connection is an open file: take all the process may have before sizing limits.
    raise_open_file_limit()
    if process_index is None:
        http_server(settings, run_workers=run_workers).run()
        return
    # One of `--processes N` (vidq.cli.processes): only the first runs the workers.
    settings = child_settings(settings, process_index)
    server = http_server(settings, run_workers=run_workers and process_index == 0)
    server.run(sockets=[reuse_port_socket(settings.host, settings.port)])


def _supervise(settings: Settings, args: argparse.Namespace) -> None:
    """With more than one process, run them on one port and exit with their status."""
    if settings.processes > 1:
        from vidq.cli.processes import supervise

        sys.exit(supervise(settings, args.argv))


def cmd_serve(args: argparse.Namespace) -> None:
    datadir.private_by_default()
    settings = load_settings(args)
    _setup_logging(settings)
    if args.process_index is not None:  # one of `--processes N`: the first did the rest
        _serve_http(settings, run_workers=True, process_index=args.process_index)
        return
    key = asyncio.run(_ensure_first_key(settings))
    if key:
        print(
            f"Created the first API key; it is also in {settings.data_dir / datadir.API_KEY_FILE}:",
            flush=True,
        )
        print(key, flush=True)
    print(
        f"vidq listening on http://{settings.host}:{settings.port} (workers: {settings.workers}, "
        f"processes: {settings.processes})",
        flush=True,
    )
    _supervise(settings, args)
    _serve_http(settings, run_workers=True, process_index=None)


def cmd_api(args: argparse.Namespace) -> None:
    datadir.private_by_default()
    settings = load_settings(args)
    _setup_logging(settings)
    if args.process_index is None and settings.processes > 1:
        _migrate_sqlite(settings)  # once, not by N processes at once
        _supervise(settings, args)
    _serve_http(settings, run_workers=False, process_index=args.process_index)


async def _run_workers(settings: Settings) -> None:
    from vidq.service import running_service

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_service(
        settings, workers=max(1, settings.workers), notify=True, batch=True
    ) as service:
        assert service.pool is not None
        log.info("vidq worker running %d conversion slot(s)", len(service.pool.workers))
        # SIGTERM drains (running jobs finish within the grace, or go back to the queue);
        # a batch worker also ends once it has done its work. Either way: exit 0.
        waits = [
            asyncio.create_task(stop.wait()),
            asyncio.create_task(service.pool.finished.wait()),
        ]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        if service.pool.finished.is_set():
            log.info("vidq worker done: %s", service.pool.limits.reason)


def cmd_worker(args: argparse.Namespace) -> None:
    datadir.private_by_default()
    settings = load_settings(args)
    _setup_logging(settings)
    asyncio.run(_run_workers(settings))


def _migrate_sqlite(settings: Settings) -> None:
    """Migrate a SQLite database now (PostgreSQL's migrations take a lock of their own)."""
    from vidq.db.database import sqlite_files
    from vidq.db.migrate import migrate_sync

    url = settings.resolved_database_url
    if sqlite_files(url):
        datadir.secure(settings.data_dir, also=sqlite_files(url))
        migrate_sync(url)


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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with where to find help) and status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _server_command(
    commands: Any,
    name: str,
    summary: str,
    func: Any,
    epilog: str | None = None,
    settings: tuple[str, ...] | None = None,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_setting_flags(parser, settings)
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vidq",
        description="vidq: a self-hosted video conversion service, and its client.",
        epilog=TOP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = _server_command(
        commands,
        "serve",
        "run the API, web page and workers in one process",
        cmd_serve,
        "example:\n  vidq serve --port 8080 --data-dir /srv/vidq",
    )
    api = _server_command(
        commands,
        "api",
        "run the HTTP API alone (a fleet's front)",
        cmd_api,
        "example:\n  VIDQ_DATABASE_URL=postgresql://vidq@db/vidq VIDQ_STORAGE_URL=s3://bucket/vidq \\\n"
        "    vidq api --host 0.0.0.0 --processes 4",
    )
    for server in (serve, api):  # set by `--processes N` for each process it starts
        server.add_argument("--process-index", type=int, default=None, help=argparse.SUPPRESS)
    _server_command(
        commands,
        "worker",
        "run conversion workers alone (a fleet's back)",
        cmd_worker,
        "example:\n  VIDQ_DATABASE_URL=postgresql://vidq@db/vidq VIDQ_STORAGE_URL=s3://bucket/vidq \\\n"
        "    vidq worker --workers 2",
    )

    _server_command(
        commands,
        "migrate",
        "bring the database to the newest schema and exit (every process also does at start)",
        cmd_migrate,
        "example:\n  VIDQ_DATABASE_URL=postgresql://vidq@db/vidq vidq migrate",
        DATABASE_SETTINGS,
    )

    keys = commands.add_parser(
        "keys",
        help="make, list and revoke API keys (on the database)",
        description="Make, list and revoke API keys, on the database directly.",
        epilog=KEYS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = _server_command(
        key_commands,
        "create",
        "a new owner (or a new key for one); prints the key last",
        _keys(cmd_keys_create),
        KEYS_EPILOG,
    )
    create.add_argument("name", metavar="NAME", help="the owner's name")
    listing = _server_command(
        key_commands,
        "list",
        "every key's owner, id, creation and last use (never the key itself)",
        _keys(cmd_keys_list),
        KEYS_EPILOG,
        DATABASE_SETTINGS,
    )
    listing.add_argument("--json", action="store_true", help="print one JSON document")
    revoke = _server_command(
        key_commands,
        "revoke",
        "delete a key: requests with it get 401 from now on",
        _keys(cmd_keys_revoke),
        KEYS_EPILOG,
        DATABASE_SETTINGS,
    )
    revoke.add_argument("key_id", metavar="KEY_ID", help="the id `vidq keys list` shows")
    revoke.add_argument("--json", action="store_true", help="print one JSON document")

    add_client_verbs(commands, client_flags())
    return parser


def _keys(func: Any) -> Any:
    """A keys command, run with the settings (and a private umask: it may make files)."""

    def run(args: argparse.Namespace) -> None:
        datadir.private_by_default()
        sys.exit(func(args, load_settings(args)))

    return run


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        if getattr(args, "client_verb", None) is not None:
            sys.exit(run_client_verb(args.client_verb, args))
        args.func(args)
    except CommandFailed as failure:
        print(f"vidq: {failure.message}", file=sys.stderr)
        sys.exit(failure.exit_status)
    except KeyboardInterrupt:
        print("\nvidq: interrupted.", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`vidq jobs | head -1`): nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


if __name__ == "__main__":
    main()

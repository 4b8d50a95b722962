"""The `vidq` command's client verbs: convert, status, jobs, cancel, delete, download."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from vidq.client import VidqAPIError, VidqClient
from vidq.datadir import API_KEY_FILE

DEFAULT_URL = "http://127.0.0.1:8000"


def _client(args: argparse.Namespace) -> VidqClient:
    key = args.api_key or os.environ.get("VIDQ_API_KEY")
    if not key:
        key_file = Path(os.environ.get("VIDQ_DATA_DIR", "vidq-data")) / API_KEY_FILE
        if key_file.is_file():
            key = key_file.read_text().strip()
    if not key:
        sys.exit(
            "vidq: no API key: pass --api-key, set VIDQ_API_KEY, or run beside vidq-data/api-key"
        )
    return VidqClient(args.url or os.environ.get("VIDQ_URL", DEFAULT_URL), key)


def _print(document: Any) -> None:
    print(json.dumps(document, indent=2))


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"vidq: --option takes NAME=VALUE, not {pair!r}")
        options[name] = value
    return options


def cmd_convert(args: argparse.Namespace) -> None:
    with _client(args) as client:
        options = _options(args.option)
        if args.preset:
            options["preset"] = args.preset
        job = client.convert(args.file, idempotency_key=args.idempotency_key, **options)
        if args.wait or args.output:
            job = client.wait(job["id"])
        if args.output and job["status"] == "completed":
            client.download(job["id"], args.output)
        _print(job)
        if job["status"] in ("failed", "cancelled"):
            sys.exit(1)


def cmd_status(args: argparse.Namespace) -> None:
    with _client(args) as client:
        _print(client.wait(args.id) if args.wait else client.job(args.id))


def cmd_jobs(args: argparse.Namespace) -> None:
    with _client(args) as client:
        for job in client.jobs(status=args.status, limit=args.limit):
            progress = job["progress_percent"]
            shown = f"{progress:5.1f}%" if progress is not None else "     "
            print(f"{job['id']}  {job['status']:<9} {shown}  {job['input']['filename']}")


def cmd_cancel(args: argparse.Namespace) -> None:
    with _client(args) as client:
        _print(client.cancel(args.id))


def cmd_delete(args: argparse.Namespace) -> None:
    with _client(args) as client:
        client.delete(args.id)


def cmd_download(args: argparse.Namespace) -> None:
    with _client(args) as client:
        print(client.download(args.id, args.path))


def add_client_verbs(commands: Any) -> None:
    """Register the client verbs on the `vidq` command's subparsers."""

    def verb(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        parser.add_argument("--url", help=f"the service (VIDQ_URL; default {DEFAULT_URL})")
        parser.add_argument("--api-key", help="your key (VIDQ_API_KEY; default: vidq-data/api-key)")
        parser.set_defaults(func=func)
        return parser

    convert = verb("convert", "upload a file and queue its conversion", cmd_convert)
    convert.add_argument("file", type=Path)
    convert.add_argument("--preset")
    convert.add_argument("--option", "-o", action="append", default=[], metavar="NAME=VALUE")
    convert.add_argument("--wait", action="store_true", help="wait until the job ends")
    convert.add_argument("--output", type=Path, help="wait, then save the result here")
    convert.add_argument("--idempotency-key")
    status = verb("status", "show a job", cmd_status)
    status.add_argument("id")
    status.add_argument("--wait", action="store_true", help="wait until the job ends")
    jobs = verb("jobs", "list your jobs", cmd_jobs)
    jobs.add_argument("--status", action="append")
    jobs.add_argument("--limit", type=int, default=20)
    verb("cancel", "stop a job, keeping its record", cmd_cancel).add_argument("id")
    verb("delete", "remove a job and its files", cmd_delete).add_argument("id")
    download = verb("download", "save a completed job's output", cmd_download)
    download.add_argument("id")
    download.add_argument("path", type=Path)


def run_command(args: argparse.Namespace) -> None:
    """Run the chosen command; an API problem becomes a one-line error and exit status 1."""
    try:
        args.func(args)
    except VidqAPIError as exc:
        sys.exit(f"vidq: {exc}")

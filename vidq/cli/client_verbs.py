"""The `vidq` command's client verbs: convert, watch, status, jobs, presets, download,
cancel, delete. Each says what happens as it happens and ends with one sentence on
failure; `--json` prints only the API's JSON documents, one a line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from vidq.cli.convert import check_folder, cmd_convert, cmd_watch, saved_line
from vidq.cli.display import (
    Board,
    human_age,
    human_bytes,
    human_seconds,
    print_table,
    shorten,
)
from vidq.cli.failures import (
    DONE,
    INTERRUPTED,
    JOB_FAILED,
    USAGE,
    CommandFailed,
    api_failure,
    transport_failure,
)
from vidq.cli.sending import DEFAULT_RESUMABLE_ABOVE
from vidq.cli.target import Target, target_of
from vidq.client import VidqAPIError, output_name

Verb = Callable[[argparse.Namespace, Target], int]

WHERE = """\
where the service is: --url, else VIDQ_URL, else http://VIDQ_HOST:VIDQ_PORT as `vidq serve`
uses them (http://127.0.0.1:8000 by default).
the API key: --key, else VIDQ_KEY, else the api-key file in VIDQ_DATA_DIR (./vidq-data)."""


def print_json(document: Any) -> None:
    """One JSON document on one line of standard output."""
    print(json.dumps(document), flush=True)


def _progress_cell(job: dict[str, Any]) -> str:
    if job["status"] == "queued" and job.get("queue_position"):
        return f"#{job['queue_position']} in queue"
    percent = job.get("progress_percent")
    return f"{percent:.0f}%" if percent is not None else "-"


def cmd_jobs(args: argparse.Namespace, target: Target) -> int:
    with target.client() as client:
        page = client.jobs_page(status=args.status, limit=args.limit)
    if args.json:
        print_json(page)
        return DONE
    if not page["jobs"]:
        print("No jobs yet: start one with `vidq convert FILE`.")
        return DONE
    rows = [
        (
            job["id"],
            shorten(str((job.get("input") or {}).get("filename", "")), 40),
            str((job.get("options") or {}).get("preset", "")),
            job["status"],
            _progress_cell(job),
            human_age(job.get("created_at")),
        )
        for job in page["jobs"]
    ]
    print_table(("JOB", "FILE", "PRESET", "STATUS", "PROGRESS", "AGE"), rows)
    if page.get("next_cursor"):
        print(f"(the newest {len(rows)}; --limit shows more, up to 100)")
    return DONE


def describe_job(job: dict[str, Any]) -> list[tuple[str, str]]:
    """A job as label/value lines for a person."""
    source = job.get("input") or {}
    video = source.get("video") or {}
    about = [human_bytes(source.get("size_bytes"))]
    if source.get("duration_seconds") is not None:
        about.append(human_seconds(source["duration_seconds"]))
    if video:
        about.append(f"{video.get('width')}x{video.get('height')} {video.get('codec')}")
    lines = [
        ("job", job["id"]),
        ("file", f"{source.get('filename', '?')} ({', '.join(about)})"),
        ("preset", str((job.get("options") or {}).get("preset", "-"))),
        ("status", job["status"]),
    ]
    if job["status"] == "queued" and job.get("queue_position"):
        lines.append(("queue", f"position {job['queue_position']}"))
    if job["status"] == "running":
        done = job.get("progress_percent")
        left = job.get("eta_seconds")
        shown = f"{done:.0f}%" if done is not None else "?"
        lines.append(("progress", shown + (f", {human_seconds(left)} left" if left else "")))
    lines.append(("created", f"{job.get('created_at')} ({human_age(job.get('created_at'))} ago)"))
    if job.get("processing_seconds") is not None:
        lines.append(("took", human_seconds(job["processing_seconds"])))
    result = job.get("result")
    if result:
        lines.append(
            ("output", f"{result.get('filename')} ({human_bytes(result.get('size_bytes'))})")
        )
        lines.append(("save with", f"vidq download {job['id']}"))
    error = job.get("error")
    if error:
        lines.append(("error", f"{error.get('code')}: {error.get('message')}"))
    return lines


def cmd_status(args: argparse.Namespace, target: Target) -> int:
    with target.client() as client:
        job = client.job(args.job)
    if args.json:
        print_json(job)
        return DONE
    for label, value in describe_job(job):
        print(f"{label + ':':<11}{value}")
    return DONE


def cmd_presets(args: argparse.Namespace, target: Target) -> int:
    with target.client() as client:
        presets = client.presets()
    if args.json:
        print_json({"presets": presets})
        return DONE
    print_table(("PRESET", "WHAT IT MAKES"), [(p["name"], p["description"]) for p in presets])
    return DONE


def cmd_cancel(args: argparse.Namespace, target: Target) -> int:
    with target.client() as client:
        job = client.cancel(args.job)
    if args.json:
        print_json(job)
    else:
        print(f"Cancelled job {job['id']}; its record stays until `vidq delete {job['id']}`.")
    return DONE


def cmd_delete(args: argparse.Namespace, target: Target) -> int:
    with target.client() as client:
        client.delete(args.job)
    if not args.json:
        print(f"Deleted job {args.job} and its files.")
    return DONE


def download_destination(given: str) -> Path:
    """A folder that exists, or a file path in one; else a one-line usage failure. `given`
    as typed: a trailing slash means a folder."""
    path = Path(given)
    if path.is_dir():
        check_folder(path, path)
        return path
    if given.endswith(("/", os.sep)):
        raise CommandFailed(f"The folder {given} does not exist.", USAGE)
    check_folder(path.parent, path)
    return path


def cmd_download(args: argparse.Namespace, target: Target) -> int:
    destination = download_destination(args.path)
    with target.client() as client:
        job = client.job(args.job)
        if job["status"] != "completed":
            return _not_downloadable(job)
        label = output_name(job) if destination.is_dir() else destination.name
        board = Board()
        with board:
            row = board.row(label, min(len(label), 28))
            saved = client.download(job["id"], destination, on_progress=row.downloading)
            row.end("saved", full=True)
    if args.json:
        print_json(
            {"job_id": job["id"], "path": str(saved.resolve()), "size_bytes": saved.stat().st_size}
        )
    else:
        print(saved_line(saved))
    return DONE


def _not_downloadable(job: dict[str, Any]) -> int:
    job_id = job["id"]
    if job["status"] in ("queued", "running"):
        raise CommandFailed(
            f"Job {job_id} is {job['status']}; nothing to download yet: `vidq watch {job_id}` "
            "follows it to its end.",
            USAGE,
        )
    error = job.get("error") or {}
    reason = f" ({error.get('code')}: {error.get('message')})" if error else ""
    raise CommandFailed(f"Job {job_id} is {job['status']}{reason}: it has no output.", JOB_FAILED)


def run_client_verb(verb: Verb, args: argparse.Namespace) -> int:
    """Run a client verb; every failure a user can cause becomes one line and its status."""
    target = target_of(args)
    try:
        return verb(args, target)
    except VidqAPIError as exc:
        raise api_failure(exc, url=target.url, key_source=target.key_source) from None
    except httpx.HTTPError as exc:
        raise transport_failure(exc, url=target.url, url_source=target.url_source) from None
    except KeyboardInterrupt:
        print("\nvidq: interrupted.", file=sys.stderr)
        return INTERRUPTED


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines) + "\n\n" + WHERE


def add_client_verbs(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register the client verbs; `common` holds --url, --key and --json."""

    def verb(name: str, summary: str, func: Verb, *examples: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=_examples(*examples),
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(client_verb=func)
        return parser

    convert = verb(
        "convert",
        "upload files (or have the service fetch URLs) and convert them, showing the upload, "
        "the queue and the conversion",
        cmd_convert,
        "vidq convert holiday.mov --wait                  # saves ./holiday.mp4",
        "vidq convert holiday.mov --preset webm-vp9 -o clip.webm",
        "vidq convert *.mov --preset mp4-h264-720p -o converted/",
        "vidq convert talk.mp4 --option start=60 --option end=90 --option crf=28 --wait",
        "vidq convert holiday.mov                         # queue it and return at once",
        "vidq convert https://example.com/holiday.mov --wait   # the service fetches it",
        "vidq convert --resume master.mov --wait          # go on with an interrupted upload",
    )
    convert.add_argument(
        "files",
        nargs="+",
        metavar="FILE|URL",
        help="videos to convert: files, or http(s) URLs the service fetches itself",
    )
    convert.add_argument("--preset", "-p", help="a preset (`vidq presets`); default mp4-h264")
    convert.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an option of the API, e.g. width=640, crf=23, start=10 (repeat for more)",
    )
    convert.add_argument(
        "--wait",
        "-w",
        action="store_true",
        help="stay until each job ends and save its output in the current folder",
    )
    convert.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        help="wait, then save the output here: a file name, or a folder for its own name "
        "(with several files, a folder); a file of that name already in a folder is kept and the output named -1, -2 …",
    )
    convert.add_argument(
        "--idempotency-key", help="retry-safe upload: the same key returns the first job"
    )
    convert.add_argument(
        "--resumable-above",
        default=DEFAULT_RESUMABLE_ABOVE,
        metavar="SIZE",
        help="send files larger than this (64M, 1G, 0 for all) as resumable uploads, in "
        f"chunks that a later --resume goes on with (default {DEFAULT_RESUMABLE_ABOVE})",
    )
    convert.add_argument(
        "--resume",
        action="store_true",
        help="go on with the interrupted resumable upload of each FILE (the same file, "
        "unchanged) from the bytes the service has; a file without one is sent anew",
    )

    watch = verb(
        "watch",
        "follow a job live until it ends",
        cmd_watch,
        "vidq watch 8a6e0804-2bd0-4672-b79d-d97027f9071a",
    )
    watch.add_argument("job", metavar="JOB", help="the job's id")

    status = verb(
        "status",
        "show a job: file, status, progress, output or error",
        cmd_status,
        "vidq status 8a6e0804-2bd0-4672-b79d-d97027f9071a",
        "vidq status 8a6e0804-2bd0-4672-b79d-d97027f9071a --json | jq .status",
    )
    status.add_argument("job", metavar="JOB", help="the job's id")

    jobs = verb(
        "jobs",
        "list your jobs, newest first",
        cmd_jobs,
        "vidq jobs",
        "vidq jobs --status running --status queued",
        "vidq jobs --json | jq -r '.jobs[].id'",
    )
    jobs.add_argument(
        "--status",
        action="append",
        choices=("queued", "running", "completed", "failed", "cancelled"),
        help="only jobs in this status (repeat for several)",
    )
    jobs.add_argument("--limit", type=int, default=20, help="at most this many (1-100; 20)")

    verb("presets", "list the presets the service offers", cmd_presets, "vidq presets")

    download = verb(
        "download",
        "save a completed job's output",
        cmd_download,
        "vidq download 8a6e0804-2bd0-4672-b79d-d97027f9071a            # ./holiday.mp4",
        "vidq download 8a6e0804-2bd0-4672-b79d-d97027f9071a clips/     # clips/holiday.mp4",
        "vidq download 8a6e0804-2bd0-4672-b79d-d97027f9071a best.mp4",
    )
    download.add_argument("job", metavar="JOB", help="the job's id")
    download.add_argument(
        "path",
        nargs="?",
        default=".",
        metavar="PATH|DIR",
        help="a file to write (over), or a folder for the output's own name (default: .); "
        "a name taken in the folder gets -1, -2 …",
    )

    cancel = verb(
        "cancel",
        "stop a queued or running job, keeping its record",
        cmd_cancel,
        "vidq cancel 8a6e0804-2bd0-4672-b79d-d97027f9071a",
    )
    cancel.add_argument("job", metavar="JOB", help="the job's id")

    delete = verb(
        "delete",
        "remove a job and its files (stopping it first)",
        cmd_delete,
        "vidq delete 8a6e0804-2bd0-4672-b79d-d97027f9071a",
    )
    delete.add_argument("job", metavar="JOB", help="the job's id")


def client_flags() -> argparse.ArgumentParser:
    """--url, --key and --json, shared by every client verb."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("service")
    group.add_argument("--url", help="the service, e.g. http://127.0.0.1:8000 (VIDQ_URL)")
    group.add_argument(
        "--key", "--api-key", dest="key", help="your API key (VIDQ_KEY; else VIDQ_DATA_DIR/api-key)"
    )
    group.add_argument(
        "--json",
        action="store_true",
        help="print only the JSON documents (one a line) on standard output, for scripts",
    )
    return common

"""`vidq convert` and `vidq watch`: upload, follow and save jobs with a live row each.

Each file (or URL) goes through its own thread (uploads two at a time), so that several
files upload, wait and convert side by side; how each is sent is vidq.cli.sending. Ctrl-C
stops the display and asks whether to cancel the jobs already queued; either way the
command ends with status 130.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from vidq.cli.display import LABEL_WIDTH, Board, Row, human_bytes, human_seconds
from vidq.cli.failures import (
    DONE,
    INTERRUPTED,
    JOB_FAILED,
    USAGE,
    CommandFailed,
    api_failure,
    transport_failure,
)
from vidq.cli.sending import (
    Sending,
    Source,
    Stopped,
    label_of,
    parse_size,
    resume_advice,
    send_resumably,
    sources_of,
    upload_progress,
)
from vidq.cli.target import Target
from vidq.client import FINISHED, Job, JobDeleted, VidqAPIError, VidqClient

UPLOADS_AT_ONCE = 2
_LOOKS_LIKE_OPTION = re.compile(r"^[a-z_]+=[^/]*$")


@dataclass
class Outcome:
    """What became of one file or job."""

    label: str
    job: Job | None = None
    saved: Path | None = None
    failure: CommandFailed | None = None
    bug: Exception | None = None
    resumable: Path | None = None  # the file, when it goes as a resumable upload


@dataclass
class Plan:
    """What `vidq convert` was asked to do with every file."""

    options: dict[str, str]
    wait: bool
    destination: Path | None  # a folder (own names in it) or, for one file, the file
    sending: Sending
    idempotency_key: str | None = None
    upload_slots: threading.Semaphore = field(
        default_factory=lambda: threading.Semaphore(UPLOADS_AT_ONCE)
    )


def parse_options(pairs: list[str], preset: str | None) -> dict[str, str]:
    """`--option NAME=VALUE` pairs (and `--preset`) as the request's options."""
    options: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CommandFailed(f"--option takes NAME=VALUE, e.g. crf=23, not {pair!r}.", USAGE)
        options[name.strip()] = value
    if preset:
        options["preset"] = preset
    return options


def check_inputs(paths: list[Path]) -> list[Path]:
    """The files to upload, each one there and readable; else a one-line usage failure."""
    for path in paths:
        if not path.exists():
            raise CommandFailed(f"{path}: no such file.", USAGE)
        if path.is_dir():
            raise CommandFailed(f"{path} is a folder, not a video file.", USAGE)
        if not os.access(path, os.R_OK):
            raise CommandFailed(f"{path} cannot be read (permission denied).", USAGE)
    return paths


def check_folder(folder: Path, asked: Path) -> None:
    if not folder.is_dir():
        raise CommandFailed(f"The folder {folder} does not exist (for {asked}).", USAGE)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandFailed(f"The folder {folder} cannot be written to.", USAGE)


def check_destination(given: str | None, files: int) -> Path:
    """Where outputs go: a folder that exists (each output under its own name), or, for a
    single file, a file path in a folder that exists. `given` as typed: a trailing slash
    means a folder."""
    if given is None:
        return Path(".")
    output = Path(given)
    if _LOOKS_LIKE_OPTION.match(given) and not output.exists():
        raise CommandFailed(
            f"-o names where to save the output; for the option {given} use --option {given}.",
            USAGE,
        )
    if output.is_dir():
        check_folder(output, output)
        return output
    if files > 1 or given.endswith(("/", os.sep)):
        raise CommandFailed(
            f"The folder {given} does not exist"
            + (" (with several files, -o names a folder)." if files > 1 else "."),
            USAGE,
        )
    check_folder(output.parent, output)
    return output


def check_preset(client: VidqClient, options: dict[str, str]) -> None:
    """Refuse an unknown preset before anything is uploaded (this also proves that the
    service answers and takes the key)."""
    names = [preset["name"] for preset in client.presets()]
    wanted = options.get("preset")
    if wanted is not None and wanted not in names:
        raise CommandFailed(
            f"No preset is named {wanted!r}; `vidq presets` lists them ({', '.join(names)}).",
            USAGE,
        )


def saved_line(path: Path) -> str:
    """The last line of a save: what was saved, and where."""
    size = human_bytes(path.stat().st_size)
    return f"Saved {path.name} ({size}) in {path.parent.resolve()}"


def _job_end_note(job: Job) -> str:
    if job["status"] == "completed":
        took = job.get("processing_seconds")
        return "converted" + (f" in {human_seconds(took)}" if took is not None else "")
    error = job.get("error") or {}
    if job["status"] == "failed":
        return f"failed ({error.get('code', 'error')}: {error.get('message', 'no reason given')})"
    return "cancelled"


def _queued_note(job: Job) -> str:
    position = job.get("queue_position")
    where = f", position {position} in the queue" if position else ""
    return f"job {job['id']} ({job['status']}{where})"


class Session:
    """The rows, threads and outcomes of one `vidq convert` or `vidq watch`."""

    def __init__(self, target: Target, *, json_output: bool) -> None:
        self.target = target
        self.json_output = json_output
        self.board = Board()
        self.stop = threading.Event()
        self.rows: list[Row] = []
        self.outcomes: list[Outcome] = []

    def _guard(self, out: Outcome, row: Row, work: Callable[[], None]) -> None:
        """Run one file's work in its thread; every failure lands in its Outcome."""
        try:
            work()
        except Stopped:
            row.end("stopped", full=False)
        except (VidqAPIError, JobDeleted, httpx.HTTPError, OSError) as exc:
            out.failure = self._failure(exc)
            advice = out.resumable and out.job is None and resume_advice(out.resumable, exc)
            if advice:
                out.failure.message += " " + advice
        except Exception as exc:  # a bug: shown with its traceback once the rows stop
            out.bug = exc
        if out.failure is not None:
            row.end("failed", full=False)

    def _failure(self, exc: Exception) -> CommandFailed:
        target = self.target
        if isinstance(exc, VidqAPIError):
            return api_failure(exc, url=target.url, key_source=target.key_source)
        if isinstance(exc, httpx.HTTPError):
            return transport_failure(exc, url=target.url, url_source=target.url_source)
        if isinstance(exc, OSError):
            where = f" {exc.filename}" if exc.filename else ""
            return CommandFailed(f"Cannot save{where}: {exc.strerror}.", JOB_FAILED)
        return CommandFailed(str(exc), JOB_FAILED)

    def follow(self, client: VidqClient, job_id: str, row: Row, out: Outcome) -> Job:
        job: Job = {}
        for job in client.follow(job_id):
            out.job = job
            row.show(job)
        return job

    def send(self, client: VidqClient, source: Source, plan: Plan, row: Row, out: Outcome) -> Job:
        """Hand one input to the service (vidq.cli.sending); its queued Job."""
        if isinstance(source, str):
            return client.convert_url(source, idempotency_key=plan.idempotency_key, **plan.options)
        uploaded = upload_progress(row, self.stop, source.stat().st_size)
        with plan.upload_slots:
            uploaded(0)
            if plan.sending.goes_resumably(client, source):
                out.resumable = source
                return send_resumably(
                    client,
                    source,
                    plan.sending,
                    row,
                    self.stop,
                    idempotency_key=plan.idempotency_key,
                    options=plan.options,
                )
            return client.convert(
                source, idempotency_key=plan.idempotency_key, on_progress=uploaded, **plan.options
            )

    def convert_one(self, source: Source, plan: Plan, row: Row, out: Outcome) -> None:
        with self.target.client() as client:
            job = self.send(client, source, plan, row, out)
            out.job = job
            row.show(job)
            if not plan.wait:
                row.end("queued", full=False)
                return
            row.note(_queued_note(job))
            job = self.follow(client, job["id"], row, out)
            row.note(_job_end_note(job), always=False)
            if job["status"] != "completed":
                row.end(job["status"], full=False)
                return
            assert plan.destination is not None
            out.saved = client.download(job["id"], plan.destination, on_progress=row.downloading)
            row.end("saved", full=True)

    def watch_one(self, job_id: str, row: Row, out: Outcome) -> None:
        with self.target.client() as client:
            job = self.follow(client, job_id, row, out)
            row.end(job["status"], full=job["status"] == "completed")
            row.note(_job_end_note(job), always=False)

    def run(self, labels: list[str], work: Callable[[int, Row, Outcome], None]) -> int:
        """Run `work` for each label in its own thread with its own row; the exit status."""
        width = min(LABEL_WIDTH, max(len(label) for label in labels))
        with self.board:
            for label in labels:
                self.rows.append(self.board.row(label, width))
                self.outcomes.append(Outcome(label))
            threads = [
                threading.Thread(
                    target=self._guard,
                    args=(out, row, lambda i=i, row=row, out=out: work(i, row, out)),
                    daemon=True,
                )
                for i, (row, out) in enumerate(zip(self.rows, self.outcomes, strict=True))
            ]
            for thread in threads:
                thread.start()
            try:
                for thread in threads:
                    while thread.is_alive():
                        thread.join(0.1)
            except KeyboardInterrupt:
                self.stop.set()
                self.board.stop()
                return self.interrupted()
        return self.report()

    def report(self) -> int:
        """Say what became of each file (stdout), the failures (stderr); the exit status."""
        for out in self.outcomes:
            if out.bug is not None:
                raise out.bug
        status = DONE
        several = len(self.outcomes) > 1
        for out in self.outcomes:
            if out.failure is not None:
                status = max(status, out.failure.exit_status)
                about = f"{out.label}: " if several else ""
                print(f"vidq: {about}{out.failure.message}", file=sys.stderr, flush=True)
                continue
            assert out.job is not None
            finished = out.job["status"] in FINISHED
            if finished and out.job["status"] != "completed":
                status = max(status, JOB_FAILED)
            if self.json_output:
                print(json.dumps(out.job), flush=True)
            elif out.saved is not None:
                print(saved_line(out.saved), flush=True)
            elif finished and out.job["status"] != "completed":
                print(f"vidq: {out.label}: {_job_end_note(out.job)}.", file=sys.stderr, flush=True)
            else:
                print(self.next_steps(out), flush=True)
        return status

    def next_steps(self, out: Outcome) -> str:
        assert out.job is not None
        job_id = out.job["id"]
        if out.job["status"] == "completed":
            return f"{out.label}: done; save it with `vidq download {job_id}`."
        return (
            f"{out.label}: queued as job {job_id}; follow it with `vidq watch {job_id}`, "
            f"save it with `vidq download {job_id}`."
        )

    def interrupted(self) -> int:
        """After Ctrl-C: ask whether to cancel the unfinished jobs; always status 130."""
        unfinished = [out for out in self.outcomes if out.job and out.job["status"] not in FINISHED]
        err = sys.stderr
        for out in self.outcomes:
            if out.job is None and out.failure is None:
                hint = f" {resume_advice(out.resumable, None)}" if out.resumable else ""
                print(f"{out.label}: upload stopped; nothing was queued.{hint}", file=err)
        if not unfinished:
            return INTERRUPTED
        names = ", ".join(f"{o.job['id']} ({o.label})" for o in unfinished if o.job)
        question = (
            f"Cancel job {names}? [y/N] "
            if len(unfinished) == 1
            else (f"Cancel the {len(unfinished)} unfinished jobs ({names})? [y/N] ")
        )
        if _ask(question):
            with self.target.client() as client:
                for out in unfinished:
                    assert out.job is not None
                    _cancel(client, out, self.target)
        else:
            for out in unfinished:
                assert out.job is not None
                job_id = out.job["id"]
                print(
                    f"{out.label}: job {job_id} goes on; follow it with `vidq watch {job_id}`.",
                    file=err,
                )
        return INTERRUPTED


def _ask(question: str) -> bool:
    """A yes/no question on the terminal; no (the default) without one."""
    if not sys.stdin.isatty():
        return False
    sys.stderr.write("\n" + question)
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return False
    return answer.strip().lower() in ("y", "yes")


def _cancel(client: VidqClient, out: Outcome, target: Target) -> None:
    assert out.job is not None
    job_id = out.job["id"]
    try:
        client.cancel(job_id)
        print(f"{out.label}: cancelled job {job_id}.", file=sys.stderr)
    except VidqAPIError as exc:
        if exc.status == 409:
            print(f"{out.label}: job {job_id} had ended already.", file=sys.stderr)
        else:
            failure = api_failure(exc, url=target.url, key_source=target.key_source)
            print(f"{out.label}: {failure.message}", file=sys.stderr)


def cmd_convert(args: argparse.Namespace, target: Target) -> int:
    sources = sources_of(args.files)
    check_inputs([source for source in sources if isinstance(source, Path)])
    if args.idempotency_key and len(sources) > 1:
        raise CommandFailed("--idempotency-key names one upload: give one file with it.", USAGE)
    wait = args.wait or args.output is not None
    plan = Plan(
        options=parse_options(args.option, args.preset),
        wait=wait,
        destination=check_destination(args.output, len(sources)) if wait else None,
        sending=Sending(parse_size(args.resumable_above), args.resume),
        idempotency_key=args.idempotency_key,
    )
    with target.client() as client:
        check_preset(client, plan.options)
        # A file sent resumably is sent in many requests, the job asked for after the last:
        # its options are checked before the first.
        if any(
            isinstance(source, Path) and plan.sending.goes_resumably(client, source)
            for source in sources
        ):
            client.check_options(**plan.options)
    session = Session(target, json_output=args.json)
    return session.run(
        [label_of(source) for source in sources],
        lambda i, row, out: session.convert_one(sources[i], plan, row, out),
    )


def cmd_watch(args: argparse.Namespace, target: Target) -> int:
    with target.client() as client:
        job: dict[str, Any] = client.job(args.job)
    session = Session(target, json_output=args.json)
    label = str((job.get("input") or {}).get("filename") or args.job)
    status = session.run([label], lambda _, row, out: session.watch_one(args.job, row, out))
    return status

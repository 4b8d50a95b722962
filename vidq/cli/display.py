"""What a person sees while jobs go: one live row per file on standard error (Rich), and
plain lines when standard error is not a terminal. The rows disappear when the work ends,
leaving the lines that say what became of it.

A row goes through the phases of a conversion, its bar showing each in turn:
uploading (bytes, MB/s, time left), or importing (the service fetching a URL) → queued
(its place in the queue) → converting
(percent, time left) → downloading (bytes, MB/s) → its end (saved, failed, …).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

LABEL_WIDTH = 28
TRANSFER_PHASES = ("uploading", "downloading")


def human_bytes(size: float | None) -> str:
    """`27.0 MB`, `512 kB`, `12 B` (decimal units, as transfer rates are given)."""
    if size is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


def human_seconds(seconds: float | None) -> str:
    """`0:07`, `12:30`, `1:02:03`."""
    if seconds is None:
        return "?"
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time from the API, or None."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def human_age(text: str | None, now: datetime | None = None) -> str:
    """How long ago an RFC 3339 time was: `12 s`, `5 min`, `3 h`, `2 d`."""
    moment = parse_time(text)
    if moment is None:
        return "-"
    seconds = max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds())
    for unit, scale in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= scale:
            return f"{int(seconds // scale)} {unit}"
    return f"{int(seconds)} s"


def shorten(text: str, width: int) -> str:
    """`text`, cut to `width` characters with an ellipsis in the middle if longer."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns aligned with two spaces, under a header line."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for line in (header, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)]
        print("  ".join(cells).rstrip())


class _AmountColumn(ProgressColumn):
    """Bytes while transferring (`12.3/27.0 MB`), percent while converting."""

    def render(self, task: Task) -> Text:
        phase = task.fields.get("phase")
        if phase in TRANSFER_PHASES:
            return Text(f"{human_bytes(task.completed)}/{human_bytes(task.total)}")
        if phase == "converting":
            return Text(f"{task.completed:3.0f}%")
        return Text("")


class _RateColumn(ProgressColumn):
    """MB/s while transferring."""

    def render(self, task: Task) -> Text:
        if task.fields.get("phase") in TRANSFER_PHASES and task.speed:
            return Text(f"{human_bytes(task.speed)}/s")
        return Text("")


class _TimeLeftColumn(ProgressColumn):
    """Time left: the service's estimate while converting if it gives one, else the rate's."""

    def render(self, task: Task) -> Text:
        phase = task.fields.get("phase")
        if phase not in (*TRANSFER_PHASES, "converting"):
            return Text("")
        left = task.fields.get("eta_seconds")
        if left is None:
            left = task.time_remaining
        return Text(f"{human_seconds(left)} left" if left is not None else "")


def _importing(job: dict[str, Any]) -> bool:
    """A job whose input the service is still fetching from its `source_url`."""
    source = job.get("input") or {}
    return bool(source.get("source_url")) and source.get("size_bytes") is None


class Row:
    """One file's (or job's) live row."""

    def __init__(self, board: Board, label: str) -> None:
        self.board = board
        self.label = label
        self.job_id: str | None = None
        self.status: str | None = None
        progress = board.progress
        self._task = progress.add_task(
            "", total=None, label=label, phase="waiting", state="", eta_seconds=None
        )
        self._task_state = next(task for task in progress.tasks if task.id == self._task)

    def _phase(
        self,
        phase: str,
        state: str,
        total: float | None,
        completed: float = 0,
        eta_seconds: float | None = None,
    ) -> None:
        """Show `phase`: a new phase starts its bar (and its rate and time estimates) anew;
        a bar without a total pulses."""
        progress = self.board.progress
        if self._task_state.fields.get("phase") == phase:
            progress.update(
                self._task, total=total, completed=completed, state=state, eta_seconds=eta_seconds
            )
            return
        progress.reset(
            self._task,
            total=total,
            completed=int(completed),
            label=self.label,
            phase=phase,
            state=state,
            eta_seconds=eta_seconds,
        )
        if total is None:
            self._task_state.total = None  # Rich's reset keeps the old total otherwise

    def uploading(self, sent: int, total: int) -> None:
        self._phase("uploading", "uploading", total, sent)

    def show(self, job: dict[str, Any]) -> None:
        """The job as the service last told it."""
        self.job_id = job["id"]
        self.status = job["status"]
        if self.status == "queued":
            position = job.get("queue_position")
            self._phase("queued", f"queued, position {position}" if position else "queued", None)
        elif self.status == "running" and _importing(job):
            self._phase("importing", "importing", None)
        elif self.status == "running":
            percent = job.get("progress_percent") or 0
            self._phase("converting", "converting", 100, percent, job.get("eta_seconds"))
        elif self.status == "completed":
            self._phase("converted", "converted", 100, 100)

    def downloading(self, received: int, total: int | None) -> None:
        self._phase("downloading", "downloading", total, received)

    def end(self, state: str, *, full: bool) -> None:
        """The row's last state: `saved`, `failed`, `cancelled`, `queued` …"""
        self._phase("ended", state, 100, 100 if full else 0)

    def note(self, text: str, *, always: bool = True) -> None:
        """A line about this row: above the live rows, or alone when there are none.
        Lines not `always` shown are for logs only: live rows show them already."""
        if always or not self.board.live:
            self.board.note(f"{self.label.strip()}: {text}")


class Board:
    """The live rows on standard error, redrawn ten times a second while in a `with`."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.live = self.console.is_terminal and not self.console.is_dumb_terminal
        self.progress = Progress(
            TextColumn("{task.fields[label]}"),
            BarColumn(bar_width=28),
            _AmountColumn(),
            _RateColumn(),
            _TimeLeftColumn(),
            TextColumn("{task.fields[state]}"),
            console=self.console,
            disable=not self.live,
            # The rows go when the work ends: what stays is what became of it, line by line.
            transient=True,
        )
        self._lock = threading.Lock()

    def row(self, label: str, width: int = LABEL_WIDTH) -> Row:
        """A new row, its label cut or padded to `width` so that the bars line up."""
        return Row(self, shorten(label, width).ljust(width))

    def note(self, text: str) -> None:
        with self._lock:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def __enter__(self) -> Board:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop redrawing, leaving the rows as they are."""
        self.progress.stop()

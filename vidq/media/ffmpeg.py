"""Running ffmpeg as a supervised child process, and telling users how a run failed.

ffmpeg runs in its own session and process group, set up by `vidq.media.child_limits`
(death signal, address-space and file-size limits, no core dumps, lower CPU priority).
`run_ffmpeg` reads ffmpeg's `-progress pipe:1` report, keeps the tail of its stderr, and
stops the whole group on request, on a time limit, when progress stalls, or when its own
task is cancelled, always reaping it. `describe_failure` words the outcome for users.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vidq.config import Settings
from vidq.media.child_limits import child_env, limited_argv, limited_child_setup

STDERR_TAIL_BYTES = 4096
FFMPEG_NICENESS = 10


@dataclass
class FFmpegResult:
    """How an ffmpeg run ended."""

    returncode: int | None
    stderr_tail: str
    stop_reason: str | None  # None (ran to its end), "stopped", "timeout" or "stalled"
    # Already worded for users: a run that stands for others (a chunked job's parts, each
    # failure described where it happened) says how they ended.
    message: str | None = None


async def spawn_limited(
    argv: list[str],
    *,
    memory_bytes: int,
    max_file_bytes: int,
    niceness: int,
    cwd: Path | None = None,
) -> asyncio.subprocess.Process:
    """Start a child with stdout and stderr piped, in its own process group, under limits
    (set by small programs before the command where installed: see `limited_argv`)."""
    launched = limited_argv(argv, memory_bytes, max_file_bytes, niceness)
    setup = None
    if launched is None:
        launched = argv
        setup = limited_child_setup(memory_bytes, max_file_bytes, niceness, os.getpid())
    return await asyncio.create_subprocess_exec(
        *launched,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=child_env(),
        start_new_session=True,
        preexec_fn=setup,
    )


def _signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    if process.returncode is not None:  # already reaped: its pid may belong to another
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


async def kill_process_group(
    process: asyncio.subprocess.Process, *, grace_seconds: float = 0.0
) -> None:
    """Stop a child's whole group (SIGTERM, then SIGKILL after the grace) and reap the child."""
    if grace_seconds > 0:
        _signal_group(process, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace_seconds)
    _signal_group(process, signal.SIGKILL)
    await process.wait()


async def read_tail(stream: asyncio.StreamReader, max_bytes: int) -> bytes:
    """Read a stream to its end, keeping only its last `max_bytes` bytes."""
    tail = bytearray()
    while chunk := await stream.read(65536):
        tail += chunk
        del tail[:-max_bytes]
    return bytes(tail)


class _ProgressReader:
    """Parses `-progress` key=value blocks and reports output seconds as they advance."""

    def __init__(self, on_progress: Callable[[float], None], now: Callable[[], float]) -> None:
        self.on_progress = on_progress
        self.now = now
        self.seconds = 0.0
        self.reported = -1.0
        self.last_advance = now()

    def feed(self, line: str) -> None:
        key, _, value = line.strip().partition("=")
        if key in ("out_time_us", "out_time_ms"):  # both are microseconds
            with contextlib.suppress(ValueError):
                self._advance(int(value) / 1_000_000)
        elif key == "out_time":
            self._advance(_parse_clock(value))
        elif key == "progress" and self.seconds > self.reported:
            self.reported = self.seconds
            self.on_progress(self.seconds)

    def _advance(self, seconds: float | None) -> None:
        if seconds is not None and seconds > self.seconds:
            self.seconds = seconds
            self.last_advance = self.now()

    async def read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.feed(line.decode("ascii", "replace"))


def _parse_clock(text: str) -> float | None:
    match = re.fullmatch(r"(-?)(\d+):(\d+):(\d+(?:\.\d+)?)", text.strip())
    if match is None:
        return None
    sign, hours, minutes, seconds = match.groups()
    value = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return -value if sign else value


async def run_ffmpeg(
    argv: list[str],
    *,
    settings: Settings,
    on_progress: Callable[[float], None],
    stop: asyncio.Event,
    timeout_seconds: float,
    stall_seconds: float,
    max_output_bytes: int,
    cwd: Path | None = None,
) -> FFmpegResult:
    """Run ffmpeg to its end, or stop it (on `stop`, timeout or stall) within about a second."""
    loop = asyncio.get_running_loop()
    process = await spawn_limited(
        argv,
        memory_bytes=settings.ffmpeg_memory_bytes,
        max_file_bytes=max_output_bytes,
        niceness=FFMPEG_NICENESS,
        cwd=cwd,
    )
    assert process.stdout is not None and process.stderr is not None
    progress = _ProgressReader(on_progress, loop.time)
    started = loop.time()
    progress_task = asyncio.create_task(progress.read(process.stdout))
    stderr_task = asyncio.create_task(read_tail(process.stderr, STDERR_TAIL_BYTES))
    exit_task = asyncio.create_task(process.wait())
    stop_task = asyncio.create_task(stop.wait())
    stop_reason: str | None = None
    try:
        while not exit_task.done():
            deadline = min(started + timeout_seconds, progress.last_advance + stall_seconds)
            watched: set[asyncio.Task[object]] = {exit_task, stop_task}
            if not progress_task.done():  # stdout closes just before ffmpeg exits
                watched.add(progress_task)
            await asyncio.wait(
                watched,
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if progress_task.done() and progress_task.exception() is not None:
                break  # on_progress raised: stop ffmpeg, then re-raise below
            if exit_task.done():
                break
            if stop.is_set():
                stop_reason = "stopped"
            elif loop.time() >= started + timeout_seconds:
                stop_reason = "timeout"
            elif loop.time() >= progress.last_advance + stall_seconds:
                stop_reason = "stalled"
            if stop_reason is not None:
                break
        # A stopped run's output is never used (cancelled, failed, or redone after a restart),
        # so ffmpeg is owed no time to finish it: the whole group is killed at once.
        await kill_process_group(process)
        stderr_tail = await stderr_task
        await progress_task  # raises what on_progress raised, if anything
    finally:
        if process.returncode is None:  # cancelled while running
            await asyncio.shield(kill_process_group(process))
        helpers = (progress_task, stderr_task, exit_task, stop_task)
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
    return FFmpegResult(
        returncode=process.returncode,
        stderr_tail=stderr_tail.decode("utf-8", "replace"),
        stop_reason=stop_reason,
    )


def describe_failure(
    result: FFmpegResult, *paths_to_hide: Path, memory_bytes: int | None = None
) -> str:
    """A short message for users about a failed run, with server paths shown as bare names.

    With `memory_bytes` (the limit ffmpeg ran under), a failure that looks like running out
    of memory says so, and names the limit."""
    if result.message is not None:
        return result.message
    if result.stop_reason == "stopped":
        return "The conversion was stopped."
    if result.stop_reason == "timeout":
        return "The conversion took longer than its time limit and was stopped."
    if result.stop_reason == "stalled":
        return "The conversion made no progress for too long and was stopped."
    code = result.returncode
    if code == -signal.SIGXFSZ:
        return "The conversion was stopped: the output grew larger than the size limit."
    text = _LOG_PREFIX.sub("", _hide_paths(result.stderr_tail, paths_to_hide))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = "; ".join(dict.fromkeys(lines[-3:]))  # the last few lines, without repeats
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        reason = f"ffmpeg was killed by {name}"
    elif code:
        reason = f"ffmpeg failed (exit status {code})"
    else:
        reason = "ffmpeg failed"
    if _OUT_OF_MEMORY.search(result.stderr_tail):
        reason += ", most likely out of memory"
        if memory_bytes is not None:
            reason += (
                f" (each conversion may use at most {memory_bytes // 2**20} MiB here,"
                " VIDQ_FFMPEG_MEMORY_BYTES; a smaller output size needs less)"
            )
    message = f"The conversion failed: {reason}"
    return f"{message}: {detail[-500:]}" if detail else f"{message}."


# How a failed allocation shows in ffmpeg's log. Under an address-space limit the encoder
# libraries rarely say "memory": a thread or buffer they cannot get surfaces as ffmpeg's
# "Generic error in an external library" (or as the encoder failing to open).
_OUT_OF_MEMORY = re.compile(
    r"Cannot allocate memory|out of memory|bad_alloc|malloc of size|[Ff]ailed to allocate"
    r"|Generic error in an external library"
)

# ffmpeg's "[mov @ 0x55d5c0a4e8c0] " context prefix: noise for a user.
_LOG_PREFIX = re.compile(r"\[[^\]\n]* @ 0x[0-9a-f]+\] ?")


def _hide_paths(text: str, paths: tuple[Path, ...]) -> str:
    """Replace each path (and its directory) with the file's bare name."""
    for path in paths:
        for form in {str(path), str(path.resolve())}:
            text = text.replace("file:" + form, path.name).replace(form, path.name)
        for directory in {str(path.parent), str(path.resolve().parent)}:
            if directory not in ("/", "."):
                text = text.replace(directory + os.sep, "")
    return text

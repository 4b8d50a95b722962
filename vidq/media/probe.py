"""Probing: is a file a video or audio file we can convert, and what is in it?

The file is opened by PyAV in a child process (`_probe_child.py`) under the same limits
as ffmpeg, with a time limit, the `file` protocol only and a whitelist of real media
containers, and one frame of each chosen stream is decoded to prove it decodes. A crash
or hang there costs the upload an `UnsupportedMedia`, never the server. The answer is a
`vidq.media.info.MediaInfo`, then held to the `Settings` limits (`check_limits`).

Starting Python and importing PyAV takes a child ~0.1 s, so `WarmProber` keeps one child
started ahead of need, waiting for its request on stdin; taking it starts the next in the
background. Each child still probes one file and exits: a file that crashes or hangs its
prober costs that one request. Call `close_prober()` at shutdown (the spare is killed at
exit and by its death signal anyway).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from vidq.config import Settings
from vidq.errors import UnsupportedMedia
from vidq.media.child_limits import child_env, limited_child_setup
from vidq.media.ffmpeg import read_tail
from vidq.media.formats import ALLOWED_DEMUXERS
from vidq.media.info import MediaInfo, check_limits

logger = logging.getLogger(__name__)

_CHILD_SCRIPT = Path(__file__).with_name("_probe_child.py")
_CHILD_OUTPUT_LIMIT_BYTES = 65536
_SPAWNER_THREAD = "vidq-probe-spawner"


class ProbeIncomplete(Exception):
    """Probing only some byte ranges of the file was not enough: probe the whole of it."""


async def probe(
    path: Path, settings: Settings, *, ranges: list[tuple[int, int]] | None = None
) -> MediaInfo:
    """Probe a file in a child process; UnsupportedMedia says why it cannot be converted.
    With `ranges` ([start, end) pairs), only those bytes of the file are real (the rest a
    hole): ProbeIncomplete if the demuxer wanted any other."""
    answer = await _run_child(_child_request(path, settings, ranges), settings)
    if answer.get("incomplete"):
        raise ProbeIncomplete()
    if not answer.get("ok"):
        raise UnsupportedMedia(str(answer.get("reason") or "The file could not be read."))
    info = MediaInfo.from_json(answer["info"])
    check_limits(info, settings)
    return info


def _child_request(
    path: Path, settings: Settings, ranges: list[tuple[int, int]] | None = None
) -> str:
    """The probe child's JSON request for a file; UnsupportedMedia if the file is empty."""
    path = path.resolve()
    if path.stat().st_size == 0:
        raise UnsupportedMedia("The file is empty.")
    return json.dumps(
        {
            "path": str(path),
            "format_whitelist": ",".join(sorted(ALLOWED_DEMUXERS)),
            "max_width": settings.max_input_width,
            "max_height": settings.max_input_height,
            "ranges": None if ranges is None else [list(r) for r in ranges],
        }
    )


async def _run_child(request: str, settings: Settings) -> dict[str, Any]:
    """Give a request to a probe child; its JSON answer, or UnsupportedMedia."""
    timeout = settings.probe_timeout_seconds
    child: subprocess.Popen[bytes] | None = None
    try:
        async with asyncio.timeout(timeout):
            child = await _prober.take(settings.ffmpeg_memory_bytes)
            returncode, stdout, stderr = await _exchange(child, request.encode())
    except TimeoutError:
        raise UnsupportedMedia(
            f"Reading the file took longer than {timeout:g} s: it is not a file this server"
            " can convert."
        ) from None
    finally:
        if child is not None:  # timed out or cancelled: kill it; in any case reap it
            await asyncio.shield(_end_child(child))
    try:
        answer: dict[str, Any] = json.loads(stdout)
    except ValueError:
        answer = {}
    if returncode != 0 or not isinstance(answer, dict) or "ok" not in answer:
        logger.warning(
            "probe child failed with status %s: %s",
            returncode,
            stderr.decode("utf-8", "replace"),
        )
        raise UnsupportedMedia("The file could not be read: the media prober failed on it.")
    return answer


async def _exchange(child: subprocess.Popen[bytes], request: bytes) -> tuple[int, bytes, bytes]:
    """Write the request to a child's stdin; its exit status, stdout and the tail of stderr."""
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    # A few hundred bytes into an empty pipe: the write cannot block. A child that already
    # died breaks the pipe; its exit status then tells what happened.
    with contextlib.suppress(BrokenPipeError):
        child.stdin.write(request)
    child.stdin.close()
    loop = asyncio.get_running_loop()
    stdout_reader, stdout_transport = await _pipe_reader(loop, child.stdout)
    try:
        stderr_reader, stderr_transport = await _pipe_reader(loop, child.stderr)
        try:
            stdout, stderr = await asyncio.gather(
                _read_at_most(stdout_reader, _CHILD_OUTPUT_LIMIT_BYTES),
                read_tail(stderr_reader, 2048),
            )
        finally:
            stderr_transport.close()
    finally:
        stdout_transport.close()
    return await _wait_exit(child), stdout, stderr


async def _pipe_reader(
    loop: asyncio.AbstractEventLoop, pipe: Any
) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A StreamReader on one of a child's pipes, and the transport to close when done."""
    reader = asyncio.StreamReader(loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
    )
    return reader, transport


async def _wait_exit(child: subprocess.Popen[bytes]) -> int:
    """Reap a child that is ending; its exit status.

    Polled: the child is not asyncio's (it may have been started under another event
    loop), and once its pipes are closed or it was killed it is gone within a millisecond
    or two, so the first poll or two find it.
    """
    delay = 0.001
    while (returncode := child.poll()) is None:
        await asyncio.sleep(delay)
        delay = min(2 * delay, 0.05)
    return returncode


async def _end_child(child: subprocess.Popen[bytes]) -> None:
    """Kill a child's group if it still runs, reap it, close its pipes."""
    if child.returncode is None:
        _kill_group(child)
        try:
            await _wait_exit(child)
        except asyncio.CancelledError:  # the event loop is going away: reap it elsewhere
            _prober.reap_later(child)
            raise
    _close_pipes(child)


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    if child.returncode is None:  # not reaped yet, so the pid (and group) is still its own
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)


def _close_pipes(child: subprocess.Popen[bytes]) -> None:
    for pipe in (child.stdin, child.stdout, child.stderr):
        if pipe is not None:
            pipe.close()


def _dispose(child: subprocess.Popen[bytes]) -> None:
    """Kill a child's group, wait for it and close its pipes (blocking: a thread's job)."""
    _kill_group(child)
    child.wait()
    _close_pipes(child)


def _spawn_child(script: Path, memory_bytes: int) -> subprocess.Popen[bytes]:
    """Start a probe child; it imports PyAV, then waits for its request on stdin.

    The same start as `spawn_limited` gives ffmpeg and gave the prober when it was started
    per request: own session and process group, death signal, address-space limit, no file
    writes, no core dumps, a clean interpreter (-I: no PYTHON* variables or user site; -B: no
    bytecode written), no inherited descriptors.
    """
    return subprocess.Popen(
        [sys.executable, "-I", "-B", str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        env=child_env(),
        start_new_session=True,
        preexec_fn=limited_child_setup(memory_bytes, 0, 0, os.getpid()),
    )


class WarmProber:
    """Hands out probe children, keeping one spare started ahead of need.

    Children are started (and, when no event loop can, reaped) by one long-lived thread of
    its own: the event loop never waits for a fork, and the children's death signal, which
    Linux ties to the thread that forked them, fires only when the process ends (a pool
    thread that retires when idle would kill them early). The children are plain
    `subprocess.Popen`s, tied to no event loop, so one spare serves every loop of the
    process (`asyncio.run` twice, a test per loop) until `close()`.
    """

    def __init__(self, script: Path = _CHILD_SCRIPT) -> None:
        self.script = script  # the child's script (tests give a stand-in)
        self._lock = threading.Lock()
        self._spawner: concurrent.futures.ThreadPoolExecutor | None = None
        self._spare: concurrent.futures.Future[subprocess.Popen[bytes]] | None = None
        self._spare_memory_bytes = 0

    def _start(self, memory_bytes: int) -> concurrent.futures.Future[subprocess.Popen[bytes]]:
        """Start a child in the spawner's thread (call with the lock held)."""
        if self._spawner is None:
            self._spawner = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=_SPAWNER_THREAD
            )
            atexit.register(self.close)
        return self._spawner.submit(_spawn_child, self.script, memory_bytes)

    async def take(self, memory_bytes: int) -> subprocess.Popen[bytes]:
        """A started child under this address-space limit, the caller's from now on.

        Takes the spare (or starts a child if there is none, or the spare has another
        limit) and starts the next spare behind it. A spare that died idle (it never saw
        a file: not the file's doing) is replaced once by a fresh child.
        """
        stale = None
        with self._lock:
            future, self._spare = self._spare, None
            if future is not None and self._spare_memory_bytes != memory_bytes:
                stale, future = future, None
            fresh = future is None
            if future is None:
                future = self._start(memory_bytes)
            self._spare = self._start(memory_bytes)
            self._spare_memory_bytes = memory_bytes
        if stale is not None:
            self._discard(stale)
        try:
            child = await self._result(future)
            if fresh or child.poll() is None:
                return child
            _dispose(child)  # already exited: this only reaps it and closes its pipes
        except OSError:
            if fresh:
                raise
        with self._lock:
            future = self._start(memory_bytes)
        return await self._result(future)

    async def _result(
        self, future: concurrent.futures.Future[subprocess.Popen[bytes]]
    ) -> subprocess.Popen[bytes]:
        """The started child; cancelled while waiting, nothing is left behind."""
        try:
            return await asyncio.wrap_future(future)
        except BaseException:
            self._discard(future)
            raise

    def _discard(self, future: concurrent.futures.Future[subprocess.Popen[bytes]]) -> None:
        """Kill and reap the child a start gives, now or once it is started."""

        def dispose(done: concurrent.futures.Future[subprocess.Popen[bytes]]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            if threading.current_thread().name.startswith(_SPAWNER_THREAD):
                _dispose(done.result())  # just started, in the spawner's thread
            else:
                self.reap_later(done.result())

        future.add_done_callback(dispose)

    def reap_later(self, child: subprocess.Popen[bytes]) -> None:
        """Kill and reap a child in the spawner's thread (blocking there, not in a loop)."""
        spawner = self._spawner
        if spawner is not None:
            with contextlib.suppress(RuntimeError):  # RuntimeError: the interpreter is exiting
                spawner.submit(_dispose, child)
                return
        _dispose(child)

    def close(self) -> None:
        """Kill and reap the spare and every child left to the spawner's thread to reap.

        Blocks a few milliseconds at most (a start under way is waited for). Children taken
        by running probes are theirs to end. A later probe starts a new spare.
        """
        with self._lock:
            future, self._spare = self._spare, None
            spawner = self._spawner
        if future is not None:
            self._discard(future)
        if spawner is not None:  # once past the spawner's queue, every discarded child is reaped
            with contextlib.suppress(RuntimeError):  # the interpreter is exiting: already past
                spawner.submit(_nothing).result()


def _nothing() -> None:
    pass


_prober = WarmProber()


def close_prober() -> None:
    """Kill the spare probe child (call at shutdown; a later probe starts a new one)."""
    _prober.close()


async def _read_at_most(stream: asyncio.StreamReader, max_bytes: int) -> bytes:
    """Read to the end of a stream, or until more than `max_bytes` came (an invalid answer)."""
    data = bytearray()
    while len(data) <= max_bytes and (chunk := await stream.read(65536)):
        data += chunk
    return bytes(data)

"""`vidq serve|api --processes N`: N server processes on one port, so that requests use every core.

The process started (the supervisor) binds the port first, with SO_REUSEPORT, and keeps it
bound without listening: another program cannot take the port, and a port already taken
is a clear error at once. It then starts N children, the same command with
`--processes 1 --process-index I`; each binds the port with SO_REUSEPORT and listens, and
the kernel spreads new connections over the listening ones. A child that dies is started
again (unless it keeps dying at its start: then all stop, since the next would too);
SIGTERM or SIGINT to the supervisor stops every child gracefully, and it exits once they
have.

Only the first child (index 0) of `vidq serve` runs the conversion workers, the janitor
and the notifier, so N processes never run N times VIDQ_WORKERS conversions; only it
serves VIDQ_METRICS_PORT. Every child answers every route: what one process writes,
another reads from the database (and hears of through PostgreSQL NOTIFY, or on SQLite by
reading its watched jobs again: vidq.jobs.feeds, vidq.jobs.service.wait_for_end).
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from vidq.config import Settings

log = logging.getLogger("vidq")

# A child that exits this soon after it started may be unable to start; after this many such
# exits in a row, all stop (with its status). A child is started again after a pause.
START_FAILURE_SECONDS = 10.0
START_FAILURES = 3
RESTART_PAUSE_SECONDS = 1.0
# How often the supervisor looks at its children.
CHECK_SECONDS = 0.2
# Past the children's own grace at shutdown, how long before they are killed.
STOP_MARGIN_SECONDS = 15.0
CHILD_COMMAND = [sys.executable, "-m", "vidq.cli.main"]


class PortTaken(Exception):
    """The port cannot be bound (another program has it, or the address is not ours)."""


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT, not yet listening."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise PortTaken("--processes above 1 needs SO_REUSEPORT, which this system lacks")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise PortTaken(f"cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise PortTaken(f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


def child_settings(settings: Settings, index: int) -> Settings:
    """A child's settings: only the first serves the metrics port."""
    if index == 0:
        return settings
    return settings.model_copy(update={"metrics_port": None})


class Supervisor:
    """Runs `count` children of one command, each with its index; see the module's text."""

    def __init__(self, argv: list[str], count: int) -> None:
        self.argv = argv
        self.count = count
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.started: dict[int, float] = {}
        self.quick_exits: dict[int, int] = {}
        self.stopping = False

    def _start(self, index: int) -> None:
        command = [*CHILD_COMMAND, *self.argv, "--processes", "1", "--process-index", str(index)]
        self.children[index] = subprocess.Popen(command)
        self.started[index] = time.monotonic()
        log.info("server process %d started (pid %d)", index, self.children[index].pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def run(self, grace_seconds: float) -> int:
        """Start the children, keep them running until told to stop; the exit status."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        status = 0
        for index in range(self.count):
            self._start(index)
        while not self.stopping:
            for index, child in list(self.children.items()):
                code = child.poll()
                if code is None or self.stopping:
                    continue
                quick = time.monotonic() - self.started[index] < START_FAILURE_SECONDS
                self.quick_exits[index] = self.quick_exits.get(index, 0) + 1 if quick else 0
                if self.quick_exits[index] >= START_FAILURES:
                    log.error(
                        "server process %d exited at its start %d times (status %d): stopping all",
                        index,
                        START_FAILURES,
                        code,
                    )
                    status = code or 1
                    self.stopping = True
                    break
                log.warning("server process %d exited (status %d): starting another", index, code)
                time.sleep(RESTART_PAUSE_SECONDS)
                self._start(index)
            time.sleep(CHECK_SECONDS)
        return self._stop_all(grace_seconds) or status

    def _stop_all(self, grace_seconds: float) -> int:
        """SIGTERM every child (each drains as a single process would); their worst status."""
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds + STOP_MARGIN_SECONDS
        worst = 0
        for index, child in self.children.items():
            try:
                code = child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("server process %d did not stop in time: killed", index)
                child.kill()
                code = child.wait()
            # A child that had to be killed, or crashed, makes the exit status non-zero.
            if code != 0 and code != -signal.SIGTERM:
                worst = worst or (code if code > 0 else 1)
        return worst


def supervise(settings: Settings, argv: list[str]) -> int:
    """Run `settings.processes` children of the command in `argv` on one port; the exit status."""
    try:
        reserved = reuse_port_socket(settings.host, settings.port)
    except PortTaken as exc:
        print(f"vidq: {exc}", file=sys.stderr)
        return 1
    with reserved:
        return Supervisor(argv, settings.processes).run(settings.shutdown_grace_seconds)

"""How every media child process (ffmpeg, the prober) is set up: environment and limits.

`limited_child_setup` gives the function a child runs between fork and exec: it dies
with its parent (PR_SET_PDEATHSIG), and is held to an address-space limit, a limit on
the size of any file it writes, no core dumps and a lower CPU priority. `child_env` is
the environment it starts with. `vidq.media.ffmpeg` and `vidq.media.probe` both start
their children this way.

`limited_argv` gives the same start without running Python between fork and exec: the
command is prefixed with util-linux's `setpriv --pdeathsig KILL` and `prlimit` and
coreutils' `nice`, each of which sets its part and execs the next. Python then starts
the child with vfork, which for a parent of this size costs a few milliseconds instead
of tens (a fork copies the parent's page tables): it is what ffmpeg is started with
whenever those programs are installed (bench/README.md, "pickup"). The one difference:
a parent killed in the instant between the vfork and `setpriv`'s prctl leaves that
child without a death signal (the preexec function checked for it).
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
from collections.abc import Callable

# Quiet the encoder libraries that log to stderr on their own (SVT-AV1 prints its banner
# whatever ffmpeg's -loglevel says); only their errors are worth keeping.
QUIET_LIBRARIES_ENV = {"SVT_LOG": "1"}

_PR_SET_PDEATHSIG = 1
# Loaded once in the parent: the child, between fork and exec, must not load libraries.
_LIBC = ctypes.CDLL(None, use_errno=True)


def child_env() -> dict[str, str]:
    """The environment of a media child: this process's, with the encoder libraries quieted."""
    return {**os.environ, **QUIET_LIBRARIES_ENV}


def _capped(limit: int, wanted: int) -> tuple[int, int]:
    _, hard = resource.getrlimit(limit)
    value = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    return value, value


# The programs `limited_argv` runs the child through, where installed.
_SETPRIV, _PRLIMIT, _NICE = (shutil.which(name) for name in ("setpriv", "prlimit", "nice"))


def limited_argv(
    argv: list[str], memory_bytes: int, max_file_bytes: int, niceness: int
) -> list[str] | None:
    """`argv` run under the limits `limited_child_setup` sets, applied by small programs
    that exec one another (no preexec function needed); None if one is not installed."""
    if _SETPRIV is None or _PRLIMIT is None or _NICE is None:
        return None
    memory, _ = _capped(resource.RLIMIT_AS, memory_bytes)
    size, _ = _capped(resource.RLIMIT_FSIZE, max_file_bytes)
    launcher = [_SETPRIV, "--pdeathsig", "KILL", "--"]
    launcher += [_PRLIMIT, f"--as={memory}:{memory}", f"--fsize={size}:{size}", "--core=0:0", "--"]
    if niceness:
        launcher += [_NICE, "-n", str(niceness), "--"]
    return [*launcher, *argv]


def limited_child_setup(
    memory_bytes: int, max_file_bytes: int, niceness: int, parent_pid: int
) -> Callable[[], None]:
    """The function the child runs between fork and exec: death signal, limits, priority."""

    as_limit = _capped(resource.RLIMIT_AS, memory_bytes)
    fsize_limit = _capped(resource.RLIMIT_FSIZE, max_file_bytes)

    def setup() -> None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the death signal was armed
            os._exit(1)
        resource.setrlimit(resource.RLIMIT_AS, as_limit)
        resource.setrlimit(resource.RLIMIT_FSIZE, fsize_limit)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if niceness:
            os.nice(niceness)

    return setup

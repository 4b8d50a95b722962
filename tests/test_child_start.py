"""ffmpeg's start: the same limits and death signal whether they are set by the small
programs it is launched through (setpriv, prlimit, nice) or by a preexec function."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from vidq.media import child_limits, ffmpeg

from .helpers import wait_for

MIB = 1024 * 1024


async def _limits_of_child() -> tuple[dict[str, str], int]:
    process = await ffmpeg.spawn_limited(
        ["cat", "/proc/self/limits", "/proc/self/stat"],
        memory_bytes=512 * MIB,
        max_file_bytes=7 * MIB,
        niceness=10,
    )
    assert process.stdout is not None
    out = (await process.stdout.read()).decode()
    assert await process.wait() == 0
    limits = {}
    for line in out.splitlines():
        for name in ("Max address space", "Max file size", "Max core file size"):
            if line.startswith(name):
                limits[name] = " ".join(line[len(name) :].split()[:2])
    stat = out.splitlines()[-1]
    niceness = int(stat.rsplit(")", 1)[1].split()[16])
    return limits, niceness


@pytest.mark.parametrize("launcher", [True, False], ids=["programs", "preexec"])
async def test_limits_and_priority(launcher: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if launcher and child_limits.limited_argv(["x"], 1, 1, 1) is None:
        pytest.skip("setpriv, prlimit or nice is not installed")
    if not launcher:
        monkeypatch.setattr(ffmpeg, "limited_argv", lambda *args: None)
    limits, niceness = await _limits_of_child()
    assert limits == {
        "Max address space": f"{512 * MIB} {512 * MIB}",
        "Max file size": f"{7 * MIB} {7 * MIB}",
        "Max core file size": "0 0",
    }
    assert niceness == os.getpriority(os.PRIO_PROCESS, 0) + 10


def test_a_child_dies_with_its_parent(tmp_path: Path) -> None:
    if child_limits.limited_argv(["x"], 1, 1, 1) is None:
        pytest.skip("setpriv, prlimit or nice is not installed")
    script = textwrap.dedent(
        """
        import asyncio, sys, time
        from vidq.media.ffmpeg import spawn_limited

        async def main():
            child = await spawn_limited(
                ["sleep", "60"], memory_bytes=1 << 30, max_file_bytes=1 << 20, niceness=10
            )
            print(child.pid, flush=True)
            time.sleep(60)

        asyncio.run(main())
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        # The launcher programs exec one another, and then the command.
        wait_for(lambda: psutil.Process(pid).name() == "sleep", 10, "the command to start")
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_for(lambda: not psutil.pid_exists(pid) or _zombie(pid), 10, "the child to die")
    finally:
        parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_limited_argv_runs_the_command_last() -> None:
    argv = child_limits.limited_argv(["ffmpeg", "-i", "x"], 100, 200, 0)
    if argv is None:
        pytest.skip("setpriv, prlimit or nice is not installed")
    assert argv[-3:] == ["ffmpeg", "-i", "x"]
    assert "nice" not in " ".join(argv)  # niceness 0: no nice at all
    assert "--as=100:100" in argv and "--fsize=200:200" in argv

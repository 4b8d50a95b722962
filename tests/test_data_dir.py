"""The data directory stays private: what vidq and its ffmpeg make is its user's alone.

A real `vidq serve` process started with the usual umask 022, for what another user of
the machine would see; `datadir.secure` directly for what it closes and what it leaves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from vidq import datadir

from .conftest import free_port
from .helpers import api_client, submit_job, wait_done, wait_for
from .processes import VidqProcess

LOOSE_UMASK = 0o022


def modes(root: Path) -> dict[str, int]:
    """Every directory and file under `root` (and `root` itself), with its st_mode."""
    found = {".": root.lstat().st_mode}
    for path in root.rglob("*"):
        with contextlib.suppress(FileNotFoundError):  # a file the running server removed
            found[path.relative_to(root).as_posix()] = path.lstat().st_mode
    return found


def assert_private(root: Path) -> dict[str, int]:
    """Directories 0700, files 0600: nothing for group or others; returns what it saw."""
    found = modes(root)
    loose = {
        name: oct(stat.S_IMODE(mode))
        for name, mode in found.items()
        if stat.S_IMODE(mode) != (0o700 if stat.S_ISDIR(mode) else 0o600)
    }
    assert loose == {}, f"not private: {loose}"
    return found


def umask_of(pid: int) -> int:
    """A running process's umask, as Linux reports it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise AssertionError(f"no Umask in /proc/{pid}/status")


@pytest.fixture
def sqlite_serve(tmp_path: Path) -> Iterator[VidqProcess]:
    """`vidq serve` on SQLite in its data directory, started with the usual umask 022."""
    env = {
        "VIDQ_WORKERS": "1",
        "VIDQ_HEARTBEAT_SECONDS": "0.2",
        "VIDQ_POLL_SECONDS": "0.2",
        "VIDQ_JANITOR_SECONDS": "0.3",
        "VIDQ_ORPHAN_GRACE_SECONDS": "1",
        "VIDQ_LOG_LEVEL": "warning",
    }
    process = VidqProcess("serve", tmp_path / "data", env, port=free_port(), umask=LOOSE_UMASK)
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow
def test_everything_vidq_makes_is_private(sqlite_serve: VidqProcess, long_clip: Path) -> None:
    serve = sqlite_serve
    serve.start()
    key = (serve.data_dir / "api-key").read_text().strip()
    with api_client(serve.url, key) as client:
        job = submit_job(client, long_clip, preset="webm-vp9", end="4")
        wait_for(lambda: bool(serve.ffmpeg_pids()), 20, "ffmpeg to run")
        # ffmpeg and the probe child inherit the private umask, whatever vidq was started with.
        children = psutil.Process(serve.pid).children(recursive=True)
        assert children and {umask_of(p.pid) for p in [*children, psutil.Process(serve.pid)]} == {
            0o077
        }
        wait_for(
            lambda: any(p.name.startswith("output.") for p in serve.data_dir.glob("tmp/*/*")),
            20,
            "ffmpeg to write its output",
        )
        running = assert_private(serve.data_dir)
        assert {"vidq.db", "vidq.db-wal", "vidq.db-shm", "api-key", "node-id", "worker.lock"} <= (
            running.keys()
        )
        done = wait_done(client, job["id"], timeout=120)
        assert done["status"] == "completed", done
    finished = assert_private(serve.data_dir)
    assert f"files/outputs/{job['id']}.webm" in finished

    # A data directory left open (by an older vidq, or by hand) is closed at the next start.
    serve.stop()
    for name, mode in [(".", 0o755), ("vidq.db", 0o644), ("files", 0o755), ("api-key", 0o644)]:
        os.chmod(serve.data_dir / name, mode)
    os.chmod(serve.data_dir / "files" / "outputs" / f"{job['id']}.webm", 0o666)
    serve.start()
    assert_private(serve.data_dir)
    assert "are now private to the user vidq runs as" in serve.log()
    assert (serve.data_dir / "api-key").read_text().strip() == key


def test_secure_closes_what_vidq_keeps_and_leaves_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    (data / "files" / "outputs").mkdir(parents=True)
    kept = {
        "vidq.db": 0o644,
        "files": 0o755,
        "files/outputs": 0o775,
        "files/outputs/a.mp4": 0o664,
        "notes.txt": 0o644,  # not vidq's
    }
    for name, mode in kept.items():
        path = data / name
        if not path.exists():
            path.write_text("x")
        os.chmod(path, mode)
    os.chmod(data, 0o755)
    with caplog.at_level(logging.WARNING, logger="vidq"):
        datadir.secure(data)
    after = {name: stat.S_IMODE((data / name).stat().st_mode) for name in kept}
    assert after == {
        "vidq.db": 0o600,
        "files": 0o700,
        "files/outputs": 0o700,
        "files/outputs/a.mp4": 0o600,
        "notes.txt": 0o644,
    }
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert "5 file(s) or directories" in caplog.text
    caplog.clear()
    datadir.secure(data)
    assert caplog.text == "", "nothing to say when nothing was open"

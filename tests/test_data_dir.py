"""The data directory stays private, and a database is never mistaken for another.

Real `vidq serve` processes for what a user of the machine would see (file modes, a
database file deleted under a running server, the restart after it); the janitor and the
database's id checked directly for what needs a foreign store or a replaced database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from sqlalchemy import update

from vidq import datadir
from vidq.db.database import Database
from vidq.db.migrate import migrated_database
from vidq.db.models import ServerSetting, table_of
from vidq.errors import DatabaseReplaced
from vidq.jobs.blobs import DATABASE_MARK
from vidq.jobs.runtime import Runtime
from vidq.worker.janitor import Janitor

from .conftest import admin_url, free_port, make_settings
from .helpers import api_client, assert_problem, post_convert, submit_job, wait_done, wait_for
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


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


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
        # A child that has just exited (a zombie, e.g. a step of ffmpeg's start) has no
        # umask left to read: the live ones are what the check is about.
        children = [p for p in psutil.Process(serve.pid).children(recursive=True) if _alive(p)]
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


@pytest.mark.slow
def test_database_deleted_under_a_running_server(sqlite_serve: VidqProcess, clip: Path) -> None:
    serve = sqlite_serve
    serve.start()
    key_file = serve.data_dir / "api-key"
    key = key_file.read_text().strip()
    with api_client(serve.url, key) as client:
        done = wait_done(client, submit_job(client, clip)["id"])
    assert done["status"] == "completed", done
    output = serve.data_dir / "files" / "outputs" / f"{done['id']}.mp4"
    assert output.is_file()

    for name in ("vidq.db", "vidq.db-wal", "vidq.db-shm"):
        (serve.data_dir / name).unlink(missing_ok=True)
    deleted = time.monotonic()
    wait_for(
        lambda: httpx.get(serve.url + "/readyz").status_code == 503, 5, "/readyz to answer 503"
    )
    assert time.monotonic() - deleted < 1.5
    ready = httpx.get(serve.url + "/readyz").json()
    assert ready["status"] == "unavailable" and "removed or replaced" in ready["detail"]
    with api_client(serve.url, key) as client:
        assert_problem(post_convert(client, clip), 503, "unavailable")
        assert_problem(client.get(f"/job/{done['id']}"), 503, "unavailable")

    # Restarted on the data directory, with a new and empty database: no key replaces the
    # old one, and no file of the lost database's jobs is taken for an orphan.
    serve.stop()
    key_before = key_file.stat()
    logged_before = len(serve.log())
    serve.start()

    def since_restart() -> str:
        return serve.log()[logged_before:]

    key_after = key_file.stat()
    assert key_file.read_text().strip() == key
    assert (key_after.st_ino, key_after.st_mtime_ns) == (key_before.st_ino, key_before.st_mtime_ns)
    assert "no first key is made" in since_restart()
    assert "Created the first API key" not in since_restart()
    # Said once at start, then at each sweep: wait for two sweeps.
    wait_for(
        lambda: since_restart().count("files no job owns are not removed") >= 3, 10, "two sweeps"
    )
    assert output.is_file(), "the janitor kept the lost database's output"
    assert httpx.get(serve.url + "/readyz").status_code == 200


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


async def _orphan(files: Path) -> Path:
    """A blob no job owns, older than the grace."""
    path = files / "outputs" / f"{uuid.uuid4()}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left behind")
    long_ago = time.time() - 60
    os.utime(path, (long_ago, long_ago))
    return path


async def test_janitor_removes_orphans_only_from_its_own_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = await Runtime.open(make_settings(tmp_path, orphan_grace_seconds=1))
    janitor = Janitor(runtime)
    files = runtime.settings.data_dir / "files"
    mark = files / DATABASE_MARK
    try:
        assert runtime.db.database_id and mark.read_text().strip() == runtime.db.database_id
        orphan = await _orphan(files)

        mark.write_text("0123456789abcdef0123456789abcdef\n")  # another database's store
        with caplog.at_level(logging.ERROR, logger="vidq.janitor"):
            assert (await janitor.sweep())["orphans"] == 0
        assert orphan.exists()
        assert "marked as database 0123456789abcdef0123456789abcdef's" in caplog.text

        mark.unlink()  # a store that lost its mark is marked again, as at start
        assert (await janitor.sweep())["orphans"] == 1
        assert not orphan.exists()
        assert mark.read_text().strip() == runtime.db.database_id
    finally:
        await runtime.close()


async def test_a_database_whose_id_changed_is_refused(db_url: str, tmp_path: Path) -> None:
    """Its id is how a process knows its database on PostgreSQL, where there is no file."""
    runtime = await Runtime.open(make_settings(tmp_path, db_url))
    try:
        orphan = await _orphan(runtime.settings.data_dir / "files")
        settings = table_of(ServerSetting)
        async with migrated_database(db_url) as other, other.write() as conn:
            await conn.execute(
                update(settings)
                .where(settings.c.name == "database_id")
                .values(value=uuid.uuid4().hex)
            )
        with pytest.raises(DatabaseReplaced):
            await runtime.db.ping()
        with pytest.raises(DatabaseReplaced):
            async with runtime.db.write():
                pass
        with pytest.raises(DatabaseReplaced):
            await Janitor(runtime).sweep()
        assert orphan.exists()
    finally:
        await runtime.close()


async def test_postgres_dropped_and_made_again_is_refused(postgres_url: str) -> None:
    """A connection never changes database: each new one checks the id, before any statement."""
    first, second = Database(postgres_url), Database(postgres_url)
    try:
        async with migrated_database(postgres_url) as opened:
            await opened.adopt_id()
        for database in (first, second):
            await database.adopt_id()
            await database.ping()
        name = postgres_url.rsplit("/", 1)[1]
        with psycopg.connect(admin_url(postgres_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        with pytest.raises(DatabaseReplaced, match="no vidq tables"):
            await first.ping()
        with pytest.raises(DatabaseReplaced, match="no vidq tables"):
            async with first.read():
                pass  # refused for good, as every write and read after
        async with migrated_database(postgres_url) as again:
            await again.adopt_id()  # another process starts on it: a new database
        with pytest.raises(DatabaseReplaced, match="database_id changed"):
            async with second.write():
                pass
    finally:
        await first.close()
        await second.close()


def test_no_first_key_where_a_database_was_in_use(tmp_path: Path) -> None:
    """`vidq serve` on a data directory that holds files makes no key, and leaves api-key be."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "api-key").write_text("an old key\n")
    process = VidqProcess("serve", data, {"VIDQ_WORKERS": "0"}, port=free_port())
    try:
        process.start()
    finally:
        process.stop()
    assert (data / "api-key").read_text() == "an old key\n"
    assert "no first key is made" in process.log()
    assert "Created the first API key" not in process.log()
    assert asyncio.run(_owners(f"sqlite:///{data / 'vidq.db'}")) == 0


async def _owners(url: str) -> int:
    from vidq.jobs.accounts import owner_count

    async with migrated_database(url) as database:
        return await owner_count(database)

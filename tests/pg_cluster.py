"""A PostgreSQL server of the test's own, which the test may stop and start again.

`initdb` into a temporary directory and `pg_ctl` on a free loopback port, run as the
`postgres` user when the tests run as root (PostgreSQL refuses to run as root). Tuned for
tests, not durability: no fsync.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from .conftest import free_port

PG_USER = "postgres"


def pg_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on the PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]) if versions else None


def missing_reason() -> str | None:
    """Why no cluster can be made here, or None if one can."""
    if pg_bin_dir() is None:
        return "PostgreSQL's initdb and pg_ctl are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return "running as root without a postgres user to run PostgreSQL as"
    return None


class PgCluster:
    """One PostgreSQL server: `start()`, `stop()`, `restart()`, `destroy()`; `url` for vidq."""

    def __init__(self, database: str = "vidq") -> None:
        bin_dir = pg_bin_dir()
        assert bin_dir is not None, missing_reason()
        self.bin_dir = bin_dir
        self.port = free_port()
        self.database = database
        self.root = Path(tempfile.mkdtemp(prefix="vidq-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam(PG_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, program: str, *args: str, timeout: float = 120) -> str:
        argv = [str(self.bin_dir / program), *args]
        if self._as_postgres:
            argv = ["runuser", "-u", PG_USER, "--", *argv]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )
        if done.returncode != 0:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}\n{log[-4000:]}")
        return done.stdout

    def start(self) -> None:
        """Start the server and wait until it takes connections; make the database once."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=300 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log_path), "-w",
            "-t", "120", "start",
        )  # fmt: skip
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends every session at once (as a restart or failover does)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "120", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop the server if it runs and remove its files."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop("immediate")  # fails if it is not running: nothing to stop
        shutil.rmtree(self.root, ignore_errors=True)

"""Shared fixtures: settings with a clean environment, SQLite and PostgreSQL databases, a live server."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest
import uvicorn

from vidq.config import Settings
from vidq.db.database import Database
from vidq.db.migrate import migrated_database
from vidq.jobs.accounts import create_owner
from vidq.media.probe import close_prober
from vidq.storage import open_storage

from .file_server import FileServer
from .helpers import api_client
from .media_clips import make_clip

if TYPE_CHECKING:
    from vidq.storage.s3 import S3Storage

# Read before the autouse fixture below clears VIDQ_* from the environment.
POSTGRES_URL = os.environ.get("VIDQ_TEST_POSTGRES_URL")
NO_POSTGRES = "VIDQ_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped"


def clear_vidq_env(patch: pytest.MonkeyPatch) -> None:
    """Remove every VIDQ_* variable from the environment (put back when `patch` undoes)."""
    for name in list(os.environ):
        if name.startswith("VIDQ_"):
            patch.delenv(name)


@pytest.fixture(autouse=True)
def _clean_vidq_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's VIDQ_* settings."""
    clear_vidq_env(monkeypatch)


def admin_url(url: str) -> str:
    """The URL of the server's `postgres` database, from which others are made and dropped."""
    return url.rsplit("/", 1)[0] + "/postgres"


def create_postgres_database() -> str:
    """A fresh, empty PostgreSQL database for one test; returns its URL."""
    assert POSTGRES_URL
    name = f"vidq_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(POSTGRES_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; skips when VIDQ_TEST_POSTGRES_URL is not set."""
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each backend: SQLite always, PostgreSQL as `postgres_url`."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database on each backend."""
    async with migrated_database(db_url) as database:
        yield database


def make_settings(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    """Settings for a test: its own data directory, quick heartbeats, one worker."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "workers": 1,
        "heartbeat_seconds": 0.2,
        "poll_seconds": 0.2,
        "lease_seconds": 10,
        "webhook_allow_private": False,
    }
    values.update(overrides)
    return Settings(**values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A real uvicorn server running the vidq app in a thread, and a client for it."""

    url: str
    key: str
    settings: Settings
    app: Any

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        return api_client(self.url, key or self.key, **kwargs)

    def new_key(self, name: str) -> str:
        return asyncio.run(_make_owner(self.settings, name))


async def _make_owner(settings: Settings, name: str) -> str:
    async with migrated_database(settings.resolved_database_url) as database:
        _, key = await create_owner(database, name)
    return key


def start_live_server(settings: Settings) -> tuple[LiveServer, uvicorn.Server, threading.Thread]:
    from vidq.api.serving import http_server

    key = asyncio.run(_make_owner(settings, "tester"))
    port = free_port()
    settings = settings.model_copy(
        update={"host": "127.0.0.1", "port": port, "log_level": "warning"}
    )
    # The server `vidq serve` runs (its protocol, limits and proxy trust), in a thread.
    server = http_server(settings, run_workers=settings.workers > 0)
    app = server.config.app
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", key, settings, app), server, thread


@pytest.fixture
def server_settings(tmp_path: Path) -> Settings:
    """Override in a test module to change the live server's settings."""
    return make_settings(tmp_path)


@contextmanager
def running_server(settings: Settings) -> Iterator[LiveServer]:
    """vidq on a free loopback port with these settings, stopped on exit."""
    live, server, thread = start_live_server(settings)
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=40)


@pytest.fixture
def live_server(server_settings: Settings) -> Iterator[LiveServer]:
    """vidq on a free loopback port, with one worker, on SQLite unless the settings say otherwise."""
    with running_server(server_settings) as live:
        yield live


@contextmanager
def module_server(folder: Path, **overrides: Any) -> Iterator[LiveServer]:
    """vidq for a whole test module: `make_settings(folder, **overrides)`, run without the
    developer's VIDQ_* settings (a module's fixtures start before the per-test clean-up)."""
    with pytest.MonkeyPatch.context() as env:
        clear_vidq_env(env)
        with running_server(make_settings(folder, **overrides)) as live:
            yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    """A client of the module's `server` fixture, with its key."""
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    """A file server on loopback for the module's imports (`source_url`)."""
    with FileServer() as server:
        yield server


@pytest.fixture
def no_spare_prober() -> Iterator[None]:
    """The test ends without the warm spare probe child (tests that run ffmpeg count children)."""
    yield
    close_prober()


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for generated test clips, shared by the whole session."""
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def clip(clips: Path) -> Path:
    """A one-second 160x90 H.264/AAC MP4."""
    return make_clip(clips / "clip.mp4")


@pytest.fixture(scope="session")
def long_clip(clips: Path) -> Path:
    """A 20-second 640x360 clip: long enough to be caught running."""
    return make_clip(clips / "long.mp4", seconds=20, size=(640, 360))


S3_BUCKET = "vidq-contract"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer  # loaded only by tests that use a bucket

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The endpoint, emptied, with moto's dummy credentials and nothing from the developer's AWS setup."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    httpx.post(f"{s3_endpoint}/moto-api/reset").raise_for_status()
    return s3_endpoint


def make_s3(endpoint: str, bucket: str = S3_BUCKET, prefix: str = "files") -> S3Storage:
    """A bucket on the moto server, made empty, as vidq's storage under `prefix`."""
    from vidq.storage.s3 import S3Storage

    storage = open_storage(f"s3://{bucket}/{prefix}", s3_endpoint_url=endpoint)
    assert isinstance(storage, S3Storage)
    storage.client.create_bucket(Bucket=bucket)
    return storage

"""Transient faults never fail a job: they are retried within a budget, and only a fault that
outlasts it fails the job, with `storage_unavailable`.

The bucket's outage is real: a worker process reaches the moto S3 server through a proxy
(tests/faulty_proxy.py) that the test switches to answer 500s and reset connections.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import psycopg
import pytest
import sqlalchemy.exc
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from vidq.datadir import WORKER_LOCK_FILE
from vidq.errors import StorageFull, StorageUnavailable
from vidq.faults import is_transient, retry_transient

from .conftest import free_port, make_s3
from .faulty_proxy import FaultyProxy
from .helpers import api_client, submit_job, wait_for
from .processes import VidqProcess
from .test_acceptance import _job_row, _new_key, get_job, wait_finished


def client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


def wrapped(exc: BaseException, outer: BaseException) -> BaseException:
    """`outer` raised while handling `exc`, as boto3 and SQLAlchemy wrap their errors."""
    try:
        try:
            raise exc
        except BaseException:
            raise outer  # noqa: B904 — the implicit context is the point
    except BaseException as raised:
        return raised


def pg_disconnect() -> sqlalchemy.exc.OperationalError:
    orig = psycopg.OperationalError("server closed the connection unexpectedly")
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, orig)


TRANSIENT: list[BaseException] = [
    client_error(500, "InternalError"),
    client_error(503, "SlowDown"),
    client_error(400, "RequestTimeout"),
    EndpointConnectionError(endpoint_url="http://bucket"),
    ConnectionClosedError(endpoint_url="http://bucket"),
    ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    ConnectionResetError(errno.ECONNRESET, "reset"),
    OSError(errno.EHOSTUNREACH, "no route"),
    TimeoutError(),
    pg_disconnect(),
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    httpx.ConnectError("refused"),
    wrapped(client_error(500, "InternalError"), S3UploadFailedError("Failed to upload")),
]
PERMANENT: list[BaseException] = [
    client_error(404, "NoSuchKey"),
    client_error(403, "AccessDenied"),
    client_error(507, "InsufficientStorage"),
    ValueError("bad"),
    OSError(errno.ENOSPC, "full"),
    sqlalchemy.exc.OperationalError("SELECT", {}, Exception("no such table: jobs")),
    sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
    StorageUnavailable("the budget is spent"),
    wrapped(ConnectionResetError(), StorageFull()),  # a decision taken: not retried
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_faults_are_named_in_one_place(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_other_errors_are_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


async def test_retry_outlasts_a_short_fault_and_gives_up_on_a_long_one() -> None:
    calls: list[float] = []

    async def fails_twice() -> str:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        return "done"

    assert await retry_transient(fails_twice, budget_seconds=30, what="the bucket") == "done"
    assert len(calls) == 3

    async def always_down() -> None:
        raise client_error(503, "SlowDown")

    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="The bucket stayed unreachable") as raised:
        await retry_transient(always_down, budget_seconds=0.5, what="the bucket")
    assert time.monotonic() - started >= 0.5
    assert "more than 0.5 s" in raised.value.detail and "SlowDown" in raised.value.detail

    async def broken() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        await retry_transient(broken, budget_seconds=30, what="the bucket")


@pytest.fixture
def bucket_proxy(s3: str) -> Iterator[FaultyProxy]:
    """A bucket on the moto server, and a proxy in front of the server."""
    make_s3(s3, "vidq-faults", "files")
    host, port = s3.removeprefix("http://").rsplit(":", 1)
    with FaultyProxy(host, int(port)) as proxy:
        yield proxy


def fleet(
    tmp_path: Path, s3: str, proxy: FaultyProxy, budget_seconds: float
) -> tuple[VidqProcess, VidqProcess, dict[str, str]]:
    """An API reaching the bucket directly and a worker reaching it through the proxy, on
    one SQLite database: an outage of the proxy is the worker's alone."""
    shared = {
        "VIDQ_DATABASE_URL": f"sqlite:///{tmp_path / 'fleet.db'}",
        "VIDQ_STORAGE_URL": "s3://vidq-faults/files",
        "VIDQ_S3_ENDPOINT_URL": s3,
        "VIDQ_WORKERS": "1",
        "VIDQ_HEARTBEAT_SECONDS": "0.2",
        "VIDQ_POLL_SECONDS": "0.2",
        "VIDQ_LOG_LEVEL": "warning",
    }
    api = VidqProcess("api", tmp_path / "api", shared, port=free_port())
    worker_env = {
        **shared,
        "VIDQ_S3_ENDPOINT_URL": proxy.url,
        "VIDQ_TRANSIENT_RETRY_SECONDS": str(budget_seconds),
    }
    worker = VidqProcess("worker", tmp_path / "worker", worker_env)
    return api, worker, shared


def decodes(data: bytes, path: Path) -> int:
    """How many video frames the file decodes to."""
    path.write_bytes(data)
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.slow
def test_a_bucket_outage_within_the_budget_does_not_fail_the_job(
    tmp_path: Path, s3: str, bucket_proxy: FaultyProxy, clip: Path
) -> None:
    api, worker, shared = fleet(tmp_path, s3, bucket_proxy, budget_seconds=60)
    try:
        key = asyncio.run(_new_key(shared["VIDQ_DATABASE_URL"]))
        api.start()
        worker.start(wait=False)
        wait_for(lambda: (worker.data_dir / WORKER_LOCK_FILE).exists(), 60, "the worker")
        with api_client(api.url, key) as client:
            # The bucket fails (500s and resets in turn) from before the worker claims the
            # job, and for 6 s after: its download meets the fault.
            with bucket_proxy.fault("flaky"):
                job = submit_job(client, clip, preset="mp4-h264")
                wait_for(
                    lambda: get_job(api.url, key, job["id"])["status"] == "running",
                    60,
                    "the worker to claim the job",
                )
                time.sleep(6)
            done = wait_finished(api.url, key, job["id"])
        assert "the bucket did not answer" in worker.log()
        assert done["status"] == "completed", done
        row = asyncio.run(_job_row(shared["VIDQ_DATABASE_URL"], job["id"]))
        assert row.attempts == 1, "a transient fault costs no attempt"
        output = httpx.get(done["result"]["download_url"], follow_redirects=True)
        assert output.status_code == 200
        assert decodes(output.content, tmp_path / "out.mp4") > 0
        assert "stayed unreachable" not in worker.log()
    finally:
        worker.stop()
        api.stop()


@pytest.mark.slow
def test_a_bucket_outage_past_the_budget_fails_the_job_storage_unavailable(
    tmp_path: Path, s3: str, bucket_proxy: FaultyProxy, clip: Path
) -> None:
    api, worker, shared = fleet(tmp_path, s3, bucket_proxy, budget_seconds=2)
    try:
        key = asyncio.run(_new_key(shared["VIDQ_DATABASE_URL"]))
        api.start()
        worker.start(wait=False)
        with api_client(api.url, key) as client, bucket_proxy.fault("flaky"):
            job = submit_job(client, clip, preset="mp4-h264")
            done: dict[str, Any] = wait_finished(api.url, key, job["id"])
        assert done["status"] == "failed", done
        assert done["error"]["code"] == "storage_unavailable"
        message = done["error"]["message"]
        assert "The bucket stayed unreachable for more than 2 s" in message, message
        assert get_job(api.url, key, job["id"])["error"]["code"] == "storage_unavailable"
    finally:
        worker.stop()
        api.stop()

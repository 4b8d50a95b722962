"""The storage contract, on a local directory and on a real S3-compatible server (moto) on loopback."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError
from pydantic import ValidationError

from vidq.config import Settings
from vidq.jobs.blobs import DATABASE_MARK
from vidq.storage import LocalStorage, Storage, open_storage
from vidq.storage.memory import MemoryStorage
from vidq.storage.s3 import PART_BYTES, S3Storage, _is_full

from .conftest import S3_BUCKET as BUCKET
from .conftest import make_s3, make_settings, running_server
from .helpers import assert_problem, post_convert, wait_done


@pytest.fixture(params=["local", "s3", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "files")
    if request.param == "memory":  # the fake that worker tests use keeps the same contract
        return MemoryStorage()
    return make_s3(request.getfixturevalue("s3"))


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def all_keys(store: Storage, prefix: str) -> list[str]:
    return sorted([key async for key, _ in store.keys(prefix)])


async def put(store: Storage, key: str, data: bytes) -> None:
    writer = store.writer(key)
    await writer.write(data)
    await writer.commit()


DATA = bytes(range(256)) * 40  # 10240 bytes


async def test_write_commit_read_size(store: Storage) -> None:
    writer = store.writer("inputs/a")
    for start in range(0, len(DATA), 3000):
        await writer.write(DATA[start : start + 3000])
    assert writer.bytes_written == len(DATA)
    assert await store.size("inputs/a") is None, "nothing is visible before commit"
    assert await all_keys(store, "inputs") == []
    await writer.commit()
    assert await store.size("inputs/a") == len(DATA)
    assert await collect(store.read("inputs/a")) == DATA
    assert await collect(store.read("inputs/a", 0, 0)) == DATA[:1]
    assert await collect(store.read("inputs/a", 10, 29)) == DATA[10:30]
    assert await collect(store.read("inputs/a", 10_000)) == DATA[10_000:]
    assert await collect(store.read("inputs/a", 5, len(DATA) - 1)) == DATA[5:]


async def test_abort_leaves_nothing(store: Storage) -> None:
    writer = store.writer("inputs/gone")
    await writer.write(DATA)
    await writer.abort()
    await writer.abort()  # twice is harmless
    assert await store.size("inputs/gone") is None
    for prefix in ("inputs", ".partial"):
        assert await all_keys(store, prefix) == []


async def test_missing_blobs(store: Storage, tmp_path: Path) -> None:
    assert await store.size("outputs/none.mp4") is None
    with pytest.raises(FileNotFoundError):
        await collect(store.read("outputs/none.mp4"))
    with pytest.raises(FileNotFoundError):
        async with store.local_copy("outputs/none.mp4", tmp_path / "scratch"):
            pass
    await store.delete("outputs/none.mp4")  # no error
    with pytest.raises(ValueError):
        store.writer("../escape")


async def test_delete_and_keys(store: Storage) -> None:
    before = time.time() - 5
    await put(store, "inputs/a", b"a")
    await put(store, "inputs/b", b"bb")
    await put(store, "outputs/a.mp4", b"out")
    listed = {key: mtime async for key, mtime in store.keys("inputs")}
    assert sorted(listed) == ["inputs/a", "inputs/b"]
    assert all(before < mtime < time.time() + 5 for mtime in listed.values())
    assert await all_keys(store, "outputs") == ["outputs/a.mp4"]
    await store.delete("inputs/a")
    await store.delete("inputs/a")
    assert await all_keys(store, "inputs") == ["inputs/b"]
    assert await store.size("inputs/a") is None


async def test_local_copy_and_put_file(store: Storage, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    await put(store, "inputs/a", DATA)
    async with store.local_copy("inputs/a", scratch) as path:
        assert path.read_bytes() == DATA
    if store.local_path("inputs/a") is None:
        assert list(scratch.iterdir()) == [], "the temporary download is removed"
    made = scratch / "output.mp4"
    made.write_bytes(DATA[::-1])
    await store.put_file("outputs/a.mp4", made)
    assert not made.exists()
    assert await collect(store.read("outputs/a.mp4")) == DATA[::-1]


async def test_delete_many(store: Storage) -> None:
    for name in ("a", "b", "c"):
        await put(store, f"outputs/job/{name}", name.encode())
    await store.delete_many(["outputs/job/a", "outputs/job/c", "outputs/job/missing"])
    await store.delete_many([])
    assert await all_keys(store, "outputs") == ["outputs/job/b"]


async def test_presigned_url(store: Storage) -> None:
    await put(store, "outputs/job.mp4", DATA)
    url = await store.presigned_url(
        "outputs/job.mp4",
        60,
        content_type="video/mp4",
        disposition='attachment; filename="a b.mp4"',
    )
    if not isinstance(store, S3Storage):
        assert url is None, "a directory or memory has no URL of its own: the API serves it"
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        fetched = await client.get(url)
        assert fetched.status_code == 200 and fetched.content == DATA
        assert fetched.headers["content-type"] == "video/mp4"
        assert fetched.headers["content-disposition"] == 'attachment; filename="a b.mp4"'
        part = await client.get(url, headers={"Range": "bytes=5-9"})
        assert part.status_code == 206 and part.content == DATA[5:10]


async def test_ping(store: Storage) -> None:
    await store.ping()


async def test_s3_multipart_commit_and_abort(s3: str) -> None:
    """A blob of several parts is a multipart upload; abort leaves no upload behind."""
    storage = make_s3(s3)
    big = os.urandom(PART_BYTES * 2 + 12345)
    writer = storage.writer("inputs/big")
    for start in range(0, len(big), 1024 * 1024):
        await writer.write(big[start : start + 1024 * 1024])
    uploads = storage.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["files/inputs/big"]
    assert await storage.size("inputs/big") is None
    await writer.commit()
    assert await storage.size("inputs/big") == len(big)
    middle = await collect(storage.read("inputs/big", PART_BYTES - 10, PART_BYTES + 9))
    assert middle == big[PART_BYTES - 10 : PART_BYTES + 10]

    writer = storage.writer("inputs/half")
    await writer.write(big[: PART_BYTES + 1])
    await writer.abort()
    assert storage.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert await all_keys(storage, "inputs") == ["inputs/big"]
    # The prefix keeps the bucket's other objects out of sight.
    storage.client.put_object(Bucket=BUCKET, Key="elsewhere/inputs/x", Body=b"x")
    assert await all_keys(storage, "inputs") == ["inputs/big"]


async def test_s3_ping_fails_without_bucket(s3: str) -> None:
    storage = open_storage("s3://no-such-bucket", s3_endpoint_url=s3)
    with pytest.raises(ClientError):
        await storage.ping()


def test_full_store_errors_are_recognised() -> None:
    full = ClientError({"Error": {"Code": "XMinioStorageFull"}}, "PutObject")
    assert _is_full(full)
    try:
        try:
            raise full
        except ClientError as exc:
            raise S3UploadFailedError("Failed to upload") from exc
    except S3UploadFailedError as wrapped:
        assert _is_full(wrapped)
    assert not _is_full(ClientError({"Error": {"Code": "AccessDenied"}}, "PutObject"))


@pytest.mark.parametrize("url", ["ftp://host/files", "s3://", "s3:///prefix", "/var/files"])
def test_storage_url_is_checked_at_start(url: str) -> None:
    with pytest.raises(ValidationError, match="storage_url"):
        Settings(storage_url=url)


def test_convert_download_delete_on_s3(s3: str, tmp_path: Path, clip: Path) -> None:
    """The whole service on a bucket: upload, convert, download (Range, HEAD, ETag), delete.

    Downloads stream through the API here (no redirect); tests/test_files.py follows them
    to the bucket."""
    bucket = make_s3(s3, "vidq-test", "files")
    settings = make_settings(
        tmp_path,
        storage_url="s3://vidq-test/files",
        s3_endpoint_url=s3,
        s3_redirect_downloads=False,
    )

    def objects() -> list[str]:
        """The job blobs in the bucket (not the mark naming the database)."""
        listed = bucket.client.list_objects_v2(Bucket="vidq-test")
        keys = sorted(item["Key"] for item in listed.get("Contents", []))
        assert f"files/{DATABASE_MARK}" in keys, "the bucket is marked with its database"
        return [key for key in keys if key != f"files/{DATABASE_MARK}"]

    with running_server(settings) as live, live.client() as client:
        response = post_convert(client, clip, preset="mp4-h264")
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        done = wait_done(client, job_id)
        assert done["status"] == "completed", done
        result = done["result"]
        size = result["size_bytes"]
        # The worker removes the input just after it reports the job finished.
        deadline = time.monotonic() + 10
        while len(objects()) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert objects() == [f"files/outputs/{job_id}.mp4"], "the input is gone once converted"

        url = result["download_url"]
        whole = httpx.get(url)
        assert whole.status_code == 200 and len(whole.content) == size
        assert whole.headers["content-type"] == "video/mp4"
        assert whole.headers["content-length"] == str(size)
        assert whole.headers["content-disposition"] == 'attachment; filename="clip.mp4"'
        assert whole.headers["accept-ranges"] == "bytes"
        stored = bucket.client.get_object(Bucket="vidq-test", Key=f"files/outputs/{job_id}.mp4")
        assert whole.content == stored["Body"].read()

        head = httpx.head(url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(size)
        assert head.headers["etag"] == whole.headers["etag"]

        part = httpx.get(url, headers={"Range": "bytes=10-29"})
        assert part.status_code == 206 and part.content == whole.content[10:30]
        assert part.headers["content-range"] == f"bytes 10-29/{size}"
        assert part.headers["content-length"] == "20"
        tail = httpx.get(url, headers={"Range": "bytes=-7"})
        assert tail.status_code == 206 and tail.content == whole.content[-7:]
        head_part = httpx.head(url, headers={"Range": "bytes=0-0"})
        assert head_part.status_code == 206 and head_part.headers["content-length"] == "1"
        stale = httpx.get(url, headers={"Range": "bytes=0-0", "If-Range": '"other"'})
        assert stale.status_code == 200 and len(stale.content) == size
        several = httpx.get(url, headers={"Range": "bytes=0-0,5-6"})
        assert several.status_code == 200 and len(several.content) == size
        outside = httpx.get(url, headers={"Range": f"bytes={size}-"})
        assert_problem(outside, 416, "range_not_satisfiable")
        assert outside.headers["content-range"] == f"bytes */{size}"

        etag = whole.headers["etag"]
        assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
        owned = client.get(f"/job/{job_id}/output", headers={"If-None-Match": etag})
        assert owned.status_code == 304 and owned.headers["etag"] == etag

        assert client.delete(f"/job/{job_id}").status_code == 204
        assert objects() == []
        assert_problem(httpx.get(url), 404, "not_found")
    local = settings.data_dir / "files"
    assert not local.exists() or not [p for p in local.rglob("*") if p.is_file()]
    assert not [p for p in settings.tmp_dir.rglob("*") if p.is_file()], "no downloads left"


async def test_a_blob_appended_over_many_requests(store: Storage) -> None:
    """A resumable upload's blob: each request continues from the recorded state, a
    dropped request leaves it as it was, and only `finish` makes the blob visible."""
    big = os.urandom(PART_BYTES + PART_BYTES // 2)  # one whole part and a tail, on S3
    key, stage = "inputs/appended", "uploads/one"
    appender = await store.open_appender(key, stage, {}, 0)
    await appender.write(big[:1000])
    state = await appender.save()
    size = 1000
    # A request whose bytes are dropped (a checksum that did not match) changes nothing,
    # even once it has sent a whole part.
    dropped = await store.open_appender(key, stage, state, size)
    await dropped.write(big[size : PART_BYTES + 10])
    await dropped.discard()
    appender = await store.open_appender(key, stage, state, size)
    await appender.write(big[size : PART_BYTES + 500])
    state = await appender.save()
    size = PART_BYTES + 500
    await store.tidy_stage(stage, state)
    assert await store.size(key) is None, "nothing is visible before finish"
    appender = await store.open_appender(key, stage, state, size)
    await appender.write(big[size:])
    await appender.finish()
    assert await collect(store.read(key)) == big
    assert await all_keys(store, stage) == []
    # An unfinished one that is ended leaves nothing.
    appender = await store.open_appender("inputs/ended", "uploads/two", {}, 0)
    await appender.write(big)
    state = await appender.save()
    await store.abort_append("inputs/ended", "uploads/two", state)
    assert await store.size("inputs/ended") is None
    assert await all_keys(store, "uploads") == []
    if isinstance(store, S3Storage):
        uploads = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
        assert uploads == []

"""A worker on its own: a real database, the in-memory storage fake, real ffmpeg; no server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from vidq.db.database import Database
from vidq.jobs import blobs, queue, reads
from vidq.jobs.accounts import create_owner
from vidq.jobs.options import resolve_options
from vidq.jobs.runtime import Runtime
from vidq.jobs.views import NotificationPayloads
from vidq.media.probe import probe
from vidq.storage.memory import MemoryStorage
from vidq.worker.worker import Outcome, Worker

from .conftest import make_settings


async def _runtime(db: Database, tmp_path: Path) -> Runtime:
    settings = make_settings(tmp_path)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    return Runtime(
        settings=settings,
        db=db,
        storage=MemoryStorage(),
        signing_key="test-signing-key",
        payloads=NotificationPayloads("test-signing-key", "http://vidq.test"),
    )


async def _queued_job(
    runtime: Runtime, clip: Path, *, store_input: bool = True, owner_name: str = "alice"
) -> str:
    owner, _ = await create_owner(runtime.db, owner_name)
    job_id = str(uuid.uuid4())
    if store_input:
        writer = runtime.storage.writer(blobs.input_key(job_id))
        await writer.write(clip.read_bytes())
        await writer.commit()
    info = await probe(clip, runtime.settings)
    await queue.submit(
        runtime.db,
        queue.NewJob(
            id=job_id,
            owner_id=owner.id,
            input_filename="clip.mp4",
            input_content_type="video/mp4",
            input_size_bytes=clip.stat().st_size,
            input_sha256="0" * 64,
            input_info=info.to_json(),
            options=resolve_options({"preset": "webm-vp9"}).model_dump(),
            metadata={},
            webhook_url=None,
            email=None,
        ),
        max_unfinished=10,
    )
    return job_id


async def test_worker_converts_a_claimed_job_into_storage(
    db: Database, tmp_path: Path, clip: Path
) -> None:
    runtime = await _runtime(db, tmp_path)
    job_id = await _queued_job(runtime, clip)
    claim = await queue.claim_next(db, worker_id="w/1", lease_seconds=30)
    assert claim is not None and claim.job.id == job_id

    assert await Worker(runtime, "w/1").process(claim) == Outcome.COMPLETED

    job = await reads.get(db, job_id)
    assert job.status == "completed" and job.result is not None
    assert job.output_key == blobs.output_key(job_id, "webm")
    storage = runtime.storage
    assert isinstance(storage, MemoryStorage)
    assert set(storage.blobs) == {job.output_key}, "the input is gone, the output stored"
    assert job.result["size_bytes"] == len(storage.blobs[job.output_key][0])
    assert job.result["video"]["codec"] == "vp9"
    assert list((tmp_path / "data").glob("tmp/*")) == [], "no scratch space is left"


async def test_worker_fails_a_job_whose_input_is_missing(
    db: Database, tmp_path: Path, clip: Path
) -> None:
    runtime = await _runtime(db, tmp_path)
    job_id = await _queued_job(runtime, clip, store_input=False)
    claim = await queue.claim_next(db, worker_id="w/1", lease_seconds=30)
    assert claim is not None

    assert await Worker(runtime, "w/1").process(claim) == Outcome.FAILED

    job = await reads.get(db, job_id)
    assert job.status == "failed" and job.error_code == "transcode_failed"
    assert "FileNotFoundError" in (job.error_message or "")


class FlakyStorage(MemoryStorage):
    """The storage fake, failing its next `failures` deletes (a store that errors at the boundary)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def delete(self, key: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        await super().delete(key)


async def test_a_worker_survives_errors_in_its_loop(
    db: Database, tmp_path: Path, clip: Path
) -> None:
    runtime = await _runtime(db, tmp_path)
    runtime.storage = FlakyStorage(failures=1)
    first = await _queued_job(runtime, clip)
    second = await _queued_job(runtime, clip, owner_name="bob")
    worker = Worker(runtime, "w/1")
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(600):
            jobs = [await reads.get(db, job_id) for job_id in (first, second)]
            if all(job.status == "completed" for job in jobs):
                break
            assert not task.done(), "the worker's loop ended"
            await asyncio.sleep(0.05)
        assert [job.status for job in jobs] == ["completed", "completed"]
        assert not task.done()
    finally:
        worker.stopping.set()
        await asyncio.wait_for(task, 10)
    assert isinstance(runtime.storage, FlakyStorage) and runtime.storage.failures == 0

"""A process's workers: start them, recover a dead predecessor's jobs, reap lost leases, stop gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import uuid
from pathlib import Path

from vidq import datadir
from vidq.jobs import queue
from vidq.jobs.runtime import Runtime
from vidq.jobs.subscriptions import JobChange
from vidq.worker.janitor import Janitor
from vidq.worker.worker import Worker

log = logging.getLogger("vidq.worker")

STOP_MARGIN_SECONDS = 3.0
# How often the pool looks for a worker task that died, to start it again.
SUPERVISE_SECONDS = 1.0


class NodeLock:
    """This machine's identity for the data directory, held exclusively while the process runs.

    Jobs are leased under `<node-id>/<pid>/<random>`. Whoever holds the lock next knows
    that running jobs under its node id belong to a predecessor that died, and can take
    them back at once instead of waiting for their leases to run out.
    """

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(mode=datadir.DIR_MODE, parents=True, exist_ok=True)
        id_file = data_dir / datadir.NODE_ID_FILE
        with contextlib.suppress(FileExistsError):
            datadir.write_private(id_file, uuid.uuid4().hex + "\n")
        self.node_id = id_file.read_text().strip()
        lock_file = data_dir / datadir.WORKER_LOCK_FILE
        self._fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, datadir.FILE_MODE)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._fd)
            raise RuntimeError(
                f"another vidq process with workers is using the data directory {data_dir}"
            ) from exc

    def unlock(self) -> None:
        """Let the next process on this node take the data directory."""
        os.close(self._fd)


class WorkerPool:
    """`count` workers in this process, plus the loop that returns lost jobs to the queue."""

    def __init__(self, runtime: Runtime, count: int) -> None:
        self.runtime = runtime
        self.count = count
        self.node = NodeLock(runtime.settings.data_dir)
        self.prefix = f"{self.node.node_id}/"
        instance = f"{self.prefix}{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self.workers = [Worker(runtime, f"{instance}/{n}") for n in range(count)]
        self.tasks: list[asyncio.Task[None]] = []
        self._reaper: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self.janitor = Janitor(runtime, lambda: [w.scratch for w in self.workers if w.scratch])

    async def start(self) -> None:
        """Recover the jobs a dead predecessor on this node left running, then start."""
        # We hold the node lock: whatever scratch space is here, a dead predecessor left.
        for entry in self.runtime.settings.tmp_dir.glob("*"):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        recovered = await queue.recover_expired_leases(
            self.runtime.db,
            max_attempts=self.runtime.settings.max_attempts,
            payloads=self.runtime.payloads,
            worker_prefix=self.prefix,
        )
        if recovered:
            log.info("returned %d interrupted job(s) to the queue", len(recovered))
            await self.runtime.announce_queued(
                *(JobChange(job_id, queue_moved=True) for job_id in recovered)
            )
        self.tasks = [
            asyncio.create_task(w.run(), name=f"worker-{n}") for n, w in enumerate(self.workers)
        ]
        self._reaper = asyncio.create_task(self._reap(), name="lease-reaper")
        self._supervisor = asyncio.create_task(self._supervise(), name="worker-supervisor")
        self.janitor.start()

    def alive(self) -> int:
        """How many worker tasks are running."""
        return sum(1 for task in self.tasks if not task.done())

    async def _supervise(self) -> None:
        """Start again any worker whose task ended though it was not told to stop."""
        while True:
            await asyncio.sleep(SUPERVISE_SECONDS)
            for n, task in enumerate(self.tasks):
                worker = self.workers[n]
                if not task.done() or worker.stopping.is_set():
                    continue
                error = None if task.cancelled() else task.exception()
                log.error(
                    "worker %s ended unexpectedly (%r); starting it again",
                    worker.worker_id,
                    error,
                    exc_info=error,
                )
                self.workers[n] = Worker(self.runtime, worker.worker_id)
                self.tasks[n] = asyncio.create_task(self.workers[n].run(), name=f"worker-{n}")

    async def _reap(self) -> None:
        settings = self.runtime.settings
        while True:
            await asyncio.sleep(max(1.0, settings.lease_seconds / 2))
            try:
                recovered = await queue.recover_expired_leases(
                    self.runtime.db,
                    max_attempts=settings.max_attempts,
                    payloads=self.runtime.payloads,
                )
            except Exception:
                log.exception("recovering expired leases failed")
                continue
            if recovered:
                log.warning("returned %d job(s) with expired leases to the queue", len(recovered))
                await self.runtime.announce_queued(
                    *(JobChange(job_id, queue_moved=True) for job_id in recovered)
                )
                self.runtime.notify_wakeup.set()

    async def stop(self, grace_seconds: float) -> None:
        """Stop claiming; let running conversions finish within the grace; re-queue the rest."""
        for worker in self.workers:
            worker.stopping.set()
        await self.janitor.stop()
        for loop_task in (self._reaper, self._supervisor):
            if loop_task is not None:
                loop_task.cancel()
        pending = [t for t in self.tasks if not t.done()]
        if pending:
            _, pending_set = await asyncio.wait(pending, timeout=grace_seconds)
            if pending_set:
                log.info(
                    "stopping %d conversion(s) still running; they go back to the queue",
                    len(pending_set),
                )
                for worker in self.workers:
                    worker.stop_current(shutting_down=True)
                _, still = await asyncio.wait(pending_set, timeout=STOP_MARGIN_SECONDS)
                for task in still:
                    task.cancel()
        loops = [t for t in (self._reaper, self._supervisor) if t is not None]
        for task in [*self.tasks, *loops]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.node.unlock()

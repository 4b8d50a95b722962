"""The janitor: removes expired outputs and uploads, files no job owns, stale scratch space
and old keys."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from vidq.jobs import blobs, idempotency, resumable, retention
from vidq.jobs.runtime import STORE_OF_ANOTHER_DATABASE, Runtime

log = logging.getLogger("vidq.janitor")


class Janitor:
    """Sweeps every `janitor_seconds`; every step is safe to run from many processes at once."""

    def __init__(
        self, runtime: Runtime, busy_scratch: Callable[[], Iterable[Path]] = lambda: ()
    ) -> None:
        self.runtime = runtime
        self._busy_scratch = busy_scratch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="janitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed; will try again")
            await asyncio.sleep(self.runtime.settings.janitor_seconds)

    async def sweep(self) -> dict[str, int]:
        """One pass; returns how many things of each kind it removed."""
        runtime, settings = self.runtime, self.runtime.settings
        expired = await retention.expire_outputs(runtime.db)
        for job_id, main_key in expired:
            await blobs.delete_outputs(runtime.storage, job_id, main_key)
        uploads = await resumable.sweep_expired(runtime)
        cutoff = time.time() - settings.orphan_grace_seconds
        orphans = await self._sweep_orphans(cutoff)
        scratch = self._sweep_scratch(cutoff)
        keys = await idempotency.sweep(
            runtime.db, stale_reservation_seconds=settings.orphan_grace_seconds
        )
        counts = {
            "expired_outputs": len(expired),
            "expired_uploads": uploads,
            "orphans": orphans,
            "scratch": scratch,
            "keys": keys,
        }
        if any(counts.values()):
            log.info("janitor removed %s", counts)
        return counts

    async def _sweep_orphans(self, cutoff: float) -> int:
        """Remove blobs no job owns, older than `cutoff`, if the store is this database's.

        Only the database that knows every job of the store can tell an orphan: to a new
        or replaced one every blob looks like one. The store's mark names that database
        (written if missing, as at start); under another's mark nothing is removed.
        """
        runtime = self.runtime
        # The owners and the database's id come from one transaction: they agree.
        database_id, owned = await retention.owned_blobs(runtime.db)
        adopted = runtime.db.database_id or database_id
        marked = None if adopted is None else await blobs.mark_database(runtime.storage, adopted)
        if database_id is None or marked != database_id:
            log.error(STORE_OF_ANOTHER_DATABASE, marked, database_id)
            return 0
        orphans = 0
        for prefix in blobs.SWEPT_PREFIXES:
            stale = [
                key
                async for key, modified in runtime.storage.keys(prefix)
                if modified < cutoff and blobs.owner_of(key) not in owned
            ]
            for key in stale:
                await runtime.storage.delete(key)
                orphans += 1
        return orphans

    def _sweep_scratch(self, cutoff: float) -> int:
        tmp = self.runtime.settings.tmp_dir
        if not tmp.is_dir():
            return 0
        busy = {path.resolve() for path in self._busy_scratch()}
        removed = 0
        for entry in tmp.iterdir():
            if entry.resolve() in busy or entry.stat().st_mtime >= cutoff:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        return removed

"""Storing what a finished conversion made under the job's keys (`outputs.describe_result`
writes the `result` document that lists them)."""

from __future__ import annotations

from vidq.jobs import blobs
from vidq.jobs.options import output_extension
from vidq.jobs.package_zip import store_package_zip
from vidq.storage import Storage
from vidq.worker.outputs import MadeFile, OutputPlan


async def store_outputs(
    storage: Storage, job_id: str, plan: OutputPlan, made: list[MadeFile]
) -> tuple[str, int]:
    """Store every file made under its key; returns the key and size of the download (for
    a package, a ZIP of all its files, streamed from storage). The job completes only
    after this."""
    main_key = blobs.output_key(job_id, output_extension(plan.options))
    for f in made:
        await storage.put_file(
            blobs.file_key(job_id, f.path, role=f.role, main_key=main_key), f.local
        )
    if plan.is_package:
        files = [f.listing() for f in made]
        return blobs.package_zip_key(job_id), await store_package_zip(storage, job_id, files)
    return main_key, made[0].size_bytes

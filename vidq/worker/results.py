"""What a finished conversion leaves behind: its files stored under the job's keys, and the
`result` document that describes them (the download, every file, the output as probed)."""

from __future__ import annotations

from vidq.config import Settings
from vidq.jobs import blobs
from vidq.jobs.options import output_extension
from vidq.jobs.package_zip import store_package_zip
from vidq.media import package
from vidq.media.probe import probe
from vidq.storage import Storage
from vidq.worker.outputs import MadeFile, OutputPlan


async def describe_result(
    plan: OutputPlan, made: list[MadeFile], settings: Settings
) -> dict[str, object]:
    """The job's `result` (less its links): the download, the files, the output as probed."""
    files = [
        {
            "path": f.path,
            "role": f.role,
            "size_bytes": f.size_bytes,
            "content_type": f.content_type,
        }
        for f in made
    ]
    document: dict[str, object] = {"files": files}
    if plan.is_package:
        stem = plan.main_name.rsplit(".", 1)[0]
        document.update(
            filename=f"{stem}.zip",
            content_type="application/zip",
            manifests={
                kind: name
                for kind, name in (
                    ("hls", package.MANIFEST_HLS),
                    ("dash", package.MANIFEST_DASH),
                )
                if any(f.path == name for f in made)
            },
            **plan.package_description(),
        )
        return document
    main = made[0]
    document.update(filename=main.path, size_bytes=main.size_bytes, content_type=main.content_type)
    if plan.options.format == "jpg":
        width, height = plan.picture or (0, 0)
        document.update(
            duration_seconds=None,
            video={"codec": "mjpeg", "width": width, "height": height, "fps": None},
            audio=None,
        )
        return document
    # The output is probed out of process like any upload (a warm child, ~0.01 s), not
    # in-process in a thread: it is not only our own bytes. `copy` puts the upload's
    # coded stream into it unchanged, the input's metadata is carried over, and an
    # encoder fed a hostile input could misbehave too; decoding a frame of that here
    # could crash the server, and a thread stuck in a decoder cannot be stopped or held
    # to a memory limit. A thread would save only the pipe round trip.
    output_info = await probe(main.local, settings)
    document.update(
        {
            k: v
            for k, v in output_info.to_api().items()
            if k in ("duration_seconds", "video", "audio")
        }
    )
    return document


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
        files = [
            {
                "path": f.path,
                "role": f.role,
                "size_bytes": f.size_bytes,
                "content_type": f.content_type,
            }
            for f in made
        ]
        return blobs.package_zip_key(job_id), await store_package_zip(storage, job_id, files)
    return main_key, made[0].size_bytes

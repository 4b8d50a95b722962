"""A small Python client for the vidq API; the `vidq` command's client verbs use it.

from vidq.client import VidqClient
with VidqClient("http://127.0.0.1:8000", api_key) as client:
    job = client.convert("holiday.mov", preset="mp4-h264-720p")
    for job in client.follow(job["id"]):      # live: the events stream, or polling
        print(job["status"], job["progress_percent"])
    client.download(job["id"], ".")           # ./holiday.mp4 (never overwriting)

    job = client.convert_url("https://example.com/holiday.mov")          # fetched by the service
    job = client.convert_upload(client.upload_resumable("holiday.mov"))  # tus, resumable
    job = client.convert_resumable("holiday.mov", store=UploadStore())  # a rerun goes on
"""

from vidq.client._client import (
    FINISHED,
    Job,
    JobDeleted,
    VidqClient,
    free_path,
    output_name,
)
from vidq.client._errors import VidqAPIError
from vidq.client._resume import FileIdentity, StoredUpload, UploadStore
from vidq.client._sse import ServerSentEvent, parse_events
from vidq.client._tus import TUS_CHUNK_BYTES

__all__ = [
    "FINISHED",
    "TUS_CHUNK_BYTES",
    "FileIdentity",
    "Job",
    "JobDeleted",
    "ServerSentEvent",
    "StoredUpload",
    "UploadStore",
    "VidqAPIError",
    "VidqClient",
    "free_path",
    "output_name",
    "parse_events",
]

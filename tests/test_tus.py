"""Resumable uploads (tus 1.0.0) at /uploads, through a live server.

Real clients do the uploading: tuspy (Python) and tus-js-client (the page's bundle, run
under node). A TCP proxy on loopback breaks the connection mid-upload; the upload goes on
from the offset the server reports, and the finished upload becomes a job that
completes. The protocol's refusals (412, 404, 409, 410, 413, 415, 460) are checked with
plain HTTP requests. The bucket variant (moto) stages its short tails in the bucket.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from vidq.client import VidqClient

from .conftest import LiveServer, make_s3, make_settings, module_server, running_server
from .file_server import CuttingProxy
from .helpers import assert_problem, stored_blobs, wait_done, wait_for
from .media_clips import make_padded_clip

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {**TUS, "Content-Type": "application/offset+octet-stream"}
NODE = shutil.which("node")
TUS_JS = Path(__file__).with_name("tus_js_upload.js")
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("tus")
    with module_server(folder, max_upload_bytes=64 * MIB, rate_limit_per_second=0) as live:
        yield live


@pytest.fixture(scope="module")
def big_clip(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid MP4 of 3 MiB and a bit (the clip, padded)."""
    return make_padded_clip(tmp_path_factory.mktemp("big") / "big.mp4", clip, 3 * MIB + 12345)


def metadata(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def create(client: httpx.Client, length: int, **headers: str) -> str:
    answer = client.post("/uploads", headers={**TUS, "Upload-Length": str(length), **headers})
    assert answer.status_code == 201, answer.text
    assert answer.headers["tus-resumable"] == "1.0.0"
    return str(answer.headers["location"])


def digest(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def storage_root(server: LiveServer) -> Path:
    return server.settings.data_dir / "files"


def staged(server: LiveServer) -> list[Path]:
    """Blobs of uploads and inputs in storage (outputs of completed jobs aside)."""
    root = storage_root(server)
    return [p for p in stored_blobs(root) if p.relative_to(root).parts[0] != "outputs"]


def test_options_advertise_the_protocol(client: httpx.Client, server: LiveServer) -> None:
    answer = client.options("/uploads")
    assert answer.status_code == 204
    assert answer.headers["tus-version"] == "1.0.0"
    assert answer.headers["tus-resumable"] == "1.0.0"
    assert set(answer.headers["tus-extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    }
    assert answer.headers["tus-max-size"] == str(server.settings.max_upload_bytes)
    assert answer.headers["tus-checksum-algorithm"] == "sha1,sha256"


def test_protocol_over_plain_http(client: httpx.Client, server: LiveServer, clip: Path) -> None:
    data = clip.read_bytes()
    half = len(data) // 2
    url = create(client, len(data), **{"Upload-Metadata": metadata(filename="été.mp4")})
    upload_id = url.rsplit("/", 1)[1]
    assert url == f"{server.url}/uploads/{upload_id}"
    head = client.head(url, headers=TUS)
    assert head.status_code == 200 and head.headers["upload-offset"] == "0"
    assert head.headers["upload-length"] == str(len(data))
    assert head.headers["upload-metadata"] == metadata(filename="été.mp4")
    assert head.headers["cache-control"] == "no-store" and "upload-expires" in head.headers
    # Refusals: no Tus-Resumable (412), not offset+octet-stream (415), wrong offset (409).
    no_version = client.patch(url, content=data, headers={**CHUNK, "Tus-Resumable": "0.2.2"})
    assert_problem(no_version, 412, "precondition_failed")
    assert no_version.headers["tus-version"] == "1.0.0"
    as_video = {**CHUNK, "Content-Type": "video/mp4", "Upload-Offset": "0"}
    assert_problem(
        client.patch(url, content=data, headers=as_video), 415, "unsupported_content_type"
    )
    assert_problem(
        client.patch(url, content=data, headers={**CHUNK, "Upload-Offset": "7"}), 409, "conflict"
    )
    # A chunk with its sha1 is kept; one whose sha256 does not match is not (460).
    first = client.patch(
        url,
        content=data[:half],
        headers={**CHUNK, "Upload-Offset": "0", "Upload-Checksum": digest("sha1", data[:half])},
    )
    assert first.status_code == 204 and first.headers["upload-offset"] == str(half)
    assert "upload-expires" in first.headers
    wrong = {**CHUNK, "Upload-Offset": str(half), "Upload-Checksum": digest("sha256", b"other")}
    assert_problem(client.patch(url, content=data[half:], headers=wrong), 460, "checksum_mismatch")
    assert client.head(url, headers=TUS).headers["upload-offset"] == str(half)
    unknown = {**CHUNK, "Upload-Offset": str(half), "Upload-Checksum": "md5 AAAA"}
    assert_problem(client.patch(url, content=data[half:], headers=unknown), 400, "bad_request")
    # Past Upload-Length: 413, nothing kept.
    too_much = {**CHUNK, "Upload-Offset": str(half)}
    assert_problem(
        client.patch(url, content=data[half:] + b"x", headers=too_much), 413, "too_large"
    )
    # Not finished yet: not a job's input.
    assert_problem(client.post("/convert", json={"upload_id": upload_id}), 422, "invalid_source")
    last = client.patch(
        url,
        content=data[half:],
        headers={**too_much, "Upload-Checksum": digest("sha256", data[half:])},
    )
    assert last.status_code == 204 and last.headers["upload-offset"] == str(len(data))
    done = client.head(url, headers=TUS)
    assert done.headers["upload-offset"] == str(len(data)) and "upload-expires" not in done.headers
    # Another owner's upload does not exist for them; nor does a made-up one.
    with server.client(server.new_key("mallory")) as mallory:
        assert mallory.head(url, headers=TUS).status_code == 404
        assert_problem(mallory.delete(url, headers=TUS), 404, "not_found")
        assert_problem(
            mallory.post("/convert", json={"upload_id": upload_id}), 422, "invalid_source"
        )
    for missing in ("/uploads/8a6e0804-2bd0-4672-b79d-d97027f9071a", "/uploads/x%00y"):
        assert client.head(missing, headers=TUS).status_code == 404
    # The finished upload converts, once; its name is the one in its metadata.
    job = client.post("/convert", json={"upload_id": upload_id, "preset": "gif"})
    assert job.status_code == 202, job.text
    assert job.json()["input"]["filename"] == "été.mp4"
    assert job.json()["input"]["size_bytes"] == len(data)
    again = client.post("/convert", json={"upload_id": upload_id, "preset": "gif"})
    assert "already" in assert_problem(again, 422, "invalid_source")["detail"]
    assert wait_done(client, job.json()["id"])["status"] == "completed"


def test_creation_limits_and_termination(client: httpx.Client, server: LiveServer) -> None:
    assert_problem(client.post("/uploads", headers=TUS), 400, "bad_request")
    too_big = {**TUS, "Upload-Length": str(server.settings.max_upload_bytes + 1)}
    assert_problem(client.post("/uploads", headers=too_big), 413, "too_large")
    assert_problem(
        client.post("/uploads", headers={"Upload-Length": "10"}), 412, "precondition_failed"
    )
    # creation-with-upload: the first chunk in the creating request.
    answer = client.post(
        "/uploads", content=b"0123456789", headers={**CHUNK, "Upload-Length": "25"}
    )
    assert answer.status_code == 201 and answer.headers["upload-offset"] == "10"
    url = answer.headers["location"]
    wait_for(lambda: staged(server), what="the staged bytes")
    terminated = client.delete(url, headers=TUS)
    assert terminated.status_code == 204 and terminated.headers["tus-resumable"] == "1.0.0"
    assert client.head(url, headers=TUS).status_code == 404
    assert staged(server) == []


def test_an_upload_that_is_not_media_is_refused_like_a_direct_one(
    client: httpx.Client, server: LiveServer
) -> None:
    data = b"not a video at all " * 100
    url = create(client, len(data))
    client.patch(url, content=data, headers={**CHUNK, "Upload-Offset": "0"}).raise_for_status()
    upload_id = url.rsplit("/", 1)[1]
    for _ in range(2):  # a refused submission leaves the upload as it was
        answer = client.post(f"/convert?upload_id={upload_id}")
        assert_problem(answer, 422, "unsupported_media")
    assert client.delete(url, headers=TUS).status_code == 204
    assert staged(server) == []


def test_tuspy_upload_broken_mid_way_resumes_and_converts(
    server: LiveServer, client: httpx.Client, big_clip: Path
) -> None:
    size = big_clip.stat().st_size
    headers = {"Authorization": f"Bearer {server.key}"}
    # tuspy is given the open file: given a path, it opens it again for every request.
    with (
        CuttingProxy(server.settings.port, cut_after_bytes=MIB + 5000) as proxy,
        big_clip.open("rb") as stream,
    ):
        broken = tus_client.TusClient(f"{proxy.url}/uploads", headers=headers)
        uploader = broken.uploader(
            file_stream=stream, chunk_size=2 * MIB, metadata={"filename": "big.mp4"}
        )
        with pytest.raises((TusUploadFailed, TusCommunicationError)):
            uploader.upload()
        assert proxy.cuts == 1
    # The upload's URL names the proxy it went through; the same path on the server goes on.
    url = f"{server.url}/uploads/{uploader.url.rsplit('/', 1)[1]}"
    wait_for(
        lambda: int(client.head(url, headers=TUS).headers["upload-offset"]) > 0,
        what="the bytes before the break to be kept",
    )
    direct = tus_client.TusClient(f"{server.url}/uploads", headers=headers)
    with big_clip.open("rb") as stream:
        resumed = direct.uploader(
            file_stream=stream, url=url, chunk_size=2 * MIB, upload_checksum=True
        )
        assert 0 < resumed.offset < size
        resumed.upload()
    assert client.head(url, headers=TUS).headers["upload-offset"] == str(size)
    upload_id = url.rsplit("/", 1)[1]
    key = {"Idempotency-Key": f"tuspy-{upload_id}"}
    first = client.post("/convert", json={"upload_id": upload_id, "preset": "gif"}, headers=key)
    assert first.status_code == 202, first.text
    replay = client.post("/convert", json={"upload_id": upload_id, "preset": "gif"}, headers=key)
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    job = wait_done(client, first.json()["id"])
    assert job["status"] == "completed" and job["input"]["size_bytes"] == size
    assert job["input"]["filename"] == "big.mp4"
    assert staged(server) == []


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_tus_js_client_under_node_resumes_after_a_break(
    server: LiveServer, client: httpx.Client, big_clip: Path
) -> None:
    size = big_clip.stat().st_size
    with CuttingProxy(server.settings.port, cut_after_bytes=2 * MIB) as proxy:
        done = subprocess.run(
            [str(NODE), str(TUS_JS), f"{proxy.url}/uploads", server.key, str(big_clip), str(MIB)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert proxy.cuts == 1
    result: dict[str, Any] = json.loads(done.stdout)
    # The break was seen (a PATCH failed) and the upload went on from the server's offset.
    assert result["errors"] >= 1 and result["attempts"] >= -(-size // MIB)
    upload_id = result["url"].rsplit("/", 1)[1]
    assert client.head(f"/uploads/{upload_id}", headers=TUS).headers["upload-offset"] == str(size)
    # The form's own field names the upload this time.
    answer = client.post(
        "/convert", files={"upload_id": (None, upload_id), "preset": (None, "gif")}
    )
    assert answer.status_code == 202, answer.text
    job = wait_done(client, answer.json()["id"])
    assert job["status"] == "completed" and job["input"]["size_bytes"] == size


def test_vidq_client_upload_resumable(server: LiveServer, big_clip: Path) -> None:
    made: list[str] = []
    # Through a connection that breaks once: the client goes on from the server's offset
    # (with a checksum, the broken chunk is sent again whole).
    with (
        CuttingProxy(server.settings.port, cut_after_bytes=MIB + MIB // 2) as proxy,
        VidqClient(proxy.url, server.key) as vidq,
    ):
        upload_id = vidq.upload_resumable(
            big_clip, chunk_size=MIB, created=made.append, checksum="sha256"
        )
        assert proxy.cuts == 1
        assert made == [f"{proxy.url}/uploads/{upload_id}"]
        # Given its URL again, it picks up at the server's offset: here, the end.
        assert vidq.upload_resumable(big_clip, upload_url=made[0]) == upload_id
        job = vidq.wait(vidq.convert_upload(upload_id, preset="gif")["id"], timeout=60)
    assert job["status"] == "completed" and job["input"]["filename"] == "big.mp4"
    assert job["input"]["size_bytes"] == big_clip.stat().st_size


def test_vidq_client_waits_out_the_rate_limit(tmp_path: Path, clip: Path) -> None:
    settings = make_settings(tmp_path, rate_limit_per_second=4, rate_limit_burst=3)
    with running_server(settings) as live, VidqClient(live.url, live.key) as vidq:
        upload_id = vidq.upload_resumable(clip, chunk_size=2048)  # a dozen requests or so
        with live.client() as client:
            head = client.head(f"/uploads/{upload_id}", headers=TUS)
            if head.status_code == 429:  # the client may have taken the whole burst
                time.sleep(float(head.headers["retry-after"]))
                head = client.head(f"/uploads/{upload_id}", headers=TUS)
            assert head.headers["upload-offset"] == str(clip.stat().st_size)


def test_expired_uploads_are_refused_then_swept(tmp_path: Path, clip: Path) -> None:
    settings = make_settings(tmp_path, upload_expiry_hours=1 / 3600, janitor_seconds=0.3)
    data = clip.read_bytes()
    with running_server(settings) as live, live.client() as client:
        url = create(client, len(data))
        client.patch(url, content=data[:100], headers={**CHUNK, "Upload-Offset": "0"})
        upload_id = url.rsplit("/", 1)[1]
        time.sleep(1.1)
        answer = client.patch(url, content=data[100:], headers={**CHUNK, "Upload-Offset": "100"})
        assert answer.status_code in (404, 410)
        assert client.head(url, headers=TUS).status_code in (404, 410)
        assert_problem(
            client.post("/convert", json={"upload_id": upload_id}), 422, "invalid_source"
        )
        wait_for(lambda: client.head(url, headers=TUS).status_code == 404, what="the sweep")
        assert staged(live) == []


def test_bucket_stages_tails_and_resumes(
    tmp_path: Path, s3: str, big_clip: Path, clip: Path
) -> None:
    bucket = make_s3(s3)
    settings = make_settings(
        tmp_path,
        storage_url=f"s3://{bucket.bucket}/files",
        s3_endpoint_url=s3,
        max_upload_bytes=64 * MIB,
        rate_limit_per_second=0,
    )
    padded = make_padded_clip(tmp_path / "eleven.mp4", clip, 11 * MIB + 321)
    size = padded.stat().st_size
    with running_server(settings) as live, live.client() as client:
        headers = {"Authorization": f"Bearer {live.key}"}
        with (
            CuttingProxy(live.settings.port, cut_after_bytes=5 * MIB) as proxy,
            padded.open("rb") as stream,
        ):
            broken = tus_client.TusClient(f"{proxy.url}/uploads", headers=headers)
            uploader = broken.uploader(file_stream=stream, chunk_size=3 * MIB)
            with pytest.raises((TusUploadFailed, TusCommunicationError)):
                uploader.upload()
        url = f"{live.url}/uploads/{uploader.url.rsplit('/', 1)[1]}"
        # Three MiB in the first chunk, nearly two of the second before the break: kept, as
        # a tail staged in the bucket (no 8 MiB part yet).
        wait_for(
            lambda: int(client.head(url, headers=TUS).headers["upload-offset"]) > 3 * MIB,
            what="the bytes before the break to be kept",
        )
        staged_tails = bucket.client.list_objects_v2(Bucket=bucket.bucket, Prefix="files/uploads/")
        assert [o["Key"].rsplit("/", 1)[1] for o in staged_tails["Contents"]] == ["tail-0"]
        direct = tus_client.TusClient(f"{live.url}/uploads", headers=headers)
        with padded.open("rb") as stream:
            direct.uploader(file_stream=stream, url=url, chunk_size=3 * MIB).upload()
        objects = bucket.client.list_objects_v2(Bucket=bucket.bucket).get("Contents", [])
        assert not [o["Key"] for o in objects if "/uploads/" in o["Key"]]
        answer = client.post("/convert", json={"upload_id": url.rsplit("/", 1)[1], "preset": "gif"})
        assert answer.status_code == 202, answer.text
        job = wait_done(client, answer.json()["id"])
        assert job["status"] == "completed" and job["input"]["size_bytes"] == size
    assert bucket.client.list_multipart_uploads(Bucket=bucket.bucket).get("Uploads", []) == []

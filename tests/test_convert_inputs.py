"""`vidq convert` with inputs that do not fit one request, as a real command against a real
server: a large file sent resumably, the command killed mid-upload and `--resume` going
on from the service's offset; a URL the service fetches from a file server on loopback;
options refused before the first byte of a resumable upload (`POST /convert?dry_run=true`,
checked here over plain HTTP too); and the Python client's store of unfinished uploads.

The command talks to the server through a proxy that holds the upload to a slow rate, so
that it can be killed while its upload is under way (the proxy then cuts the connection,
as the network of a machine that died would).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from vidq.client import FileIdentity, UploadStore, VidqAPIError, VidqClient

from .conftest import LiveServer, module_server
from .faulty_proxy import FaultyProxy, proxy_to
from .file_server import Body, FileServer
from .helpers import assert_problem, wait_for
from .media_clips import make_padded_clip
from .processes import VIDQ

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, files: FileServer) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("convert-inputs")
    with module_server(
        folder, url_allow=f"127.0.0.1:{files.port}", rate_limit_per_second=0
    ) as live:
        yield live


@pytest.fixture
def proxy(server: LiveServer) -> Iterator[FaultyProxy]:
    with proxy_to(server.url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def master(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid MP4 of 3 MiB and a bit (the clip, padded)."""
    return make_padded_clip(tmp_path_factory.mktemp("master") / "master.mp4", clip, 3 * MIB + 4321)


def user_env(url: str, key: str, cache: Path) -> dict[str, str]:
    return {**os.environ, "VIDQ_URL": url, "VIDQ_KEY": key, "XDG_CACHE_HOME": str(cache)}


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VIDQ, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def offset_of(server: LiveServer, upload_url: str) -> int:
    """The service's offset of an upload (asked directly, not through the proxy)."""
    with server.client() as client:
        head = client.head(urlsplit(upload_url).path, headers={"Tus-Resumable": "1.0.0"})
    assert head.status_code == 200, head.text
    return int(head.headers["upload-offset"])


def test_a_killed_upload_goes_on_with_resume_and_converts(
    server: LiveServer, proxy: FaultyProxy, master: Path, tmp_path: Path
) -> None:
    env = user_env(proxy.url, server.key, tmp_path / "cache")
    store = UploadStore(tmp_path / "cache" / "vidq" / "uploads.json")
    size = master.stat().st_size
    proxy.upload_bytes_per_second = 512 * 1024  # about 6 s for the whole file
    args = ["convert", str(master), "--resumable-above", "1M", "-o", str(tmp_path / "out.mp4")]
    command = subprocess.Popen(
        [*VIDQ, *args], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        # The upload is remembered before its first byte; kill the command once a third of
        # the file has gone through.
        wait_for(lambda: store.find(proxy.url, master) is not None, timeout=30)
        stored = store.find(proxy.url, master)
        assert stored is not None and stored.file == FileIdentity.of(master)
        wait_for(lambda: proxy.sent_bytes >= MIB, timeout=30)
    finally:
        # The command dies and its connection with it: what the proxy and the sockets
        # still held never arrives.
        command.send_signal(signal.SIGKILL)
        proxy.set_mode("drop")
        command.communicate(timeout=30)
        proxy.set_mode("healthy")
    # The service kept what arrived of the request cut short (once it has seen the cut).
    wait_for(lambda: offset_of(server, stored.upload_url) > 0, timeout=30)
    kept = offset_of(server, stored.upload_url)
    assert kept < size
    assert not (tmp_path / "out.mp4").exists()

    # Run again with --resume (at full speed): it goes on from the service's offset.
    proxy.upload_bytes_per_second = None
    before = proxy.sent_bytes
    resumed = run(*args, "--resume", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    at = re.search(r"master\.mp4: resuming its upload at ([\d.]+) (MB|kB)", resumed.stderr)
    assert at, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert resumed.stdout.startswith("Saved out.mp4 ")
    assert (tmp_path / "out.mp4").stat().st_size > 0
    # Only the rest went up (plus a few requests' heads), and the upload is forgotten.
    resent = proxy.sent_bytes - before
    assert resent < size - kept + 64 * 1024, (resent, size, kept)
    assert store.find(proxy.url, master) is None


def test_ctrl_c_during_a_resumable_upload_says_how_to_go_on(
    server: LiveServer, proxy: FaultyProxy, master: Path, tmp_path: Path
) -> None:
    env = user_env(proxy.url, server.key, tmp_path / "cache")
    store = UploadStore(tmp_path / "cache" / "vidq" / "uploads.json")
    proxy.upload_bytes_per_second = 256 * 1024
    command = subprocess.Popen(
        [*VIDQ, "convert", str(master), "--resumable-above", "0"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: store.find(proxy.url, master) is not None, timeout=30)
    command.send_signal(signal.SIGINT)
    _, stderr = command.communicate(timeout=30)
    assert command.returncode == 130
    assert f"`vidq convert --resume {master}` goes on from where it stopped" in stderr
    assert "Traceback" not in stderr
    assert store.find(proxy.url, master) is not None


def test_options_are_refused_before_a_resumable_upload_begins(
    server: LiveServer, proxy: FaultyProxy, master: Path, tmp_path: Path
) -> None:
    env = user_env(proxy.url, server.key, tmp_path / "cache")
    refused = run(
        "convert", str(master), "--resumable-above", "0", "--option", "width=5", "--wait",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "Invalid option — width:" in refused.stderr
    # Not a byte of the file went up, and no upload was begun.
    assert proxy.sent_bytes < 64 * 1024
    assert not (tmp_path / "cache" / "vidq" / "uploads.json").exists()


def test_an_option_the_input_refuses_keeps_the_upload_for_the_next_run(
    server: LiveServer, proxy: FaultyProxy, master: Path, tmp_path: Path
) -> None:
    env = user_env(proxy.url, server.key, tmp_path / "cache")
    # `start` past the end of the (1 s) input is known only once the file is in.
    args = ["convert", str(master), "--resumable-above", "0"]
    late = run(*args, "--option", "start=5", env=env, cwd=tmp_path)
    assert late.returncode == 2, late.stderr
    assert "start: must be before the end of the input" in late.stderr
    assert f"The file is uploaded and kept: `vidq convert --resume {master}`" in late.stderr
    # The next run with other options converts it without sending it again.
    before = proxy.sent_bytes
    again = run(*args, "--resume", "--option", "start=0.5", "--wait", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "master.mp4: its upload is all there (3.2 MB): asking for its job" in again.stderr
    assert again.stdout.startswith("Saved master.mp4 ")
    assert proxy.sent_bytes - before < 64 * 1024


def test_a_url_is_fetched_by_the_service_and_converted(
    server: LiveServer, files: FileServer, clip: Path, tmp_path: Path
) -> None:
    files.routes["/trip/holiday.mp4"] = Body(clip.read_bytes())
    env = user_env(server.url, server.key, tmp_path / "cache")
    url = files.url("/trip/holiday.mp4")
    done = run("convert", url, "--preset", "webm-vp9", "--wait", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Saved holiday.webm ")
    assert (tmp_path / "holiday.webm").stat().st_size > 0
    assert files.requests["/trip/holiday.mp4"] >= 1
    # A URL the service may not fetch is one line, before any job.
    refused = run("convert", "http://10.1.2.3/x.mp4", env=env, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("vidq: ") and "source_url" in refused.stderr


def test_dry_run_checks_options_and_does_nothing(server: LiveServer) -> None:
    with server.client() as client:
        before = client.get("/jobs").json()["jobs"]
        good = {"preset": "webm-vp9", "width": 640, "metadata": {"a": 1}}
        assert client.post("/convert?dry_run=true", json=good).status_code == 204
        with_upload = client.post("/convert?dry_run=true", json={"upload_id": "later", "crf": 23})
        assert with_upload.status_code == 204
        bad = client.post("/convert?dry_run=true", json={"width": 5, "crf": "x"})
        assert_problem(bad, 422, "invalid_option")
        assert {e["field"] for e in bad.json()["errors"]} == {"width", "crf"}
        refused = client.post("/convert?dry_run=true", json={"source_url": "http://10.0.0.1/a"})
        assert_problem(refused, 422, "invalid_source")
        # Options in the query, no body (the raw form's way).
        assert client.post("/convert?dry_run=true&preset=webm-vp9&width=320").status_code == 204
        assert_problem(client.post("/convert?dry_run=true&fps=500"), 422, "invalid_option")
        assert_problem(client.post("/convert?dry_run=yes"), 422, "invalid_option")
        with_file = client.post(
            "/convert?dry_run=true", content=b"\0" * 100, headers={"Content-Type": "video/mp4"}
        )
        assert_problem(with_file, 415, "unsupported_content_type")
        assert client.get("/jobs").json()["jobs"] == before


def test_the_client_starts_anew_for_a_changed_file_or_a_gone_upload(
    server: LiveServer, master: Path, tmp_path: Path
) -> None:
    store = UploadStore(tmp_path / "uploads.json")
    file = tmp_path / "noise.mp4"
    file.write_bytes(bytes(range(256)) * 4096)  # not media: its job is refused
    resumed: list[int] = []
    with VidqClient(server.url, server.key) as client:
        # An upload the service never had (or no longer has): a new one is made.
        gone = f"{server.url}/uploads/00000000-0000-4000-8000-000000000000"
        store.remember(server.url, FileIdentity.of(file), gone)
        with pytest.raises(VidqAPIError, match="unsupported_media"):
            client.convert_resumable(file, store=store, on_resume=resumed.append)
        assert resumed == []
        # A refusal of the file itself forgets the upload.
        assert store.find(server.url, file) is None
        # A half-sent upload of the file as it was, then the file changed: sent anew.
        url = client._create_upload(file.name, file.stat().st_size)
        store.remember(server.url, FileIdentity.of(file), url)
        os.utime(file, ns=(time.time_ns(), time.time_ns() + 10**9))
        with pytest.raises(VidqAPIError, match="unsupported_media"):
            client.convert_resumable(file, store=store, on_resume=resumed.append)
        assert resumed == []
        # An unchanged file goes on from its upload's offset (here: all of it is there).
        data = master.read_bytes()
        whole = tmp_path / "whole.mp4"
        whole.write_bytes(data)
        url = client._create_upload(whole.name, len(data))
        store.remember(server.url, FileIdentity.of(whole), url)
        patch = httpx.patch(
            url,
            content=data[: 2 * MIB],
            headers={
                "Tus-Resumable": "1.0.0",
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
                "Authorization": f"Bearer {server.key}",
            },
        )
        assert patch.status_code == 204
        job = client.convert_resumable(whole, store=store, on_resume=resumed.append)
        assert resumed == [2 * MIB]
        assert job["input"]["size_bytes"] == len(data)
        assert store.find(server.url, whole) is None
        # Asked for again (a run that ended between the job and forgetting): the same job.
        upload_id = url.rsplit("/", 1)[1]
        again = client.convert_upload(upload_id, idempotency_key=f"vidq-upload-{upload_id}")
        assert again["id"] == job["id"]

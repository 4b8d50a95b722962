"""POST /convert with a `source_url`: a worker fetches the input from a real HTTP server.

The file server runs on loopback and the live server lets exactly its port through
(VIDQ_URL_ALLOW); a second file server on another loopback port stands for every address
that is not let through. Each import ends as API.md says - completed, or failed with
`import_failed` / `unsupported_media` and a message saying why - and leaves no file in
storage. Transfer limits are set low so that a stall or a trickle ends in a second.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from vidq.client import VidqClient
from vidq.config import Settings

from .conftest import LiveServer, module_server
from .file_server import Body, FileServer, redirect
from .helpers import assert_problem, stored_blobs, wait_done, wait_for

MAX_UPLOAD_BYTES = 1024 * 1024


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[FileServer]:
    """A file server on a loopback port the live server may not reach."""
    with FileServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, files: FileServer) -> Iterator[LiveServer]:
    with module_server(
        tmp_path_factory.mktemp("imports"),
        url_allow=f"127.0.0.1:{files.port},localhost:{files.port}",
        max_upload_bytes=MAX_UPLOAD_BYTES,
        import_stall_seconds=1.0,
        import_min_bytes_per_second=20_000,
        import_retries=1,
        rate_limit_per_second=0,
    ) as live:
        yield live


@pytest.fixture(scope="module")
def clip_bytes(clip: Path) -> bytes:
    return clip.read_bytes()


def storage_root(server: LiveServer) -> Path:
    return server.settings.data_dir / "files"


def left_inputs(server: LiveServer) -> list[Path]:
    """Input blobs and writes in progress in storage (outputs of completed jobs aside)."""
    root = storage_root(server)
    return [p for p in stored_blobs(root) if p.relative_to(root).parts[0] != "outputs"]


def import_job(client: httpx.Client, url: str, **options: Any) -> dict[str, Any]:
    answer = client.post("/convert", json={"source_url": url, **options})
    assert answer.status_code == 202, answer.text
    job: dict[str, Any] = answer.json()
    return job


def failed_with(client: httpx.Client, url: str, code: str) -> str:
    """The message of the import of `url`, which must fail with `code`."""
    job = wait_done(client, import_job(client, url)["id"], timeout=60)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == code, job["error"]
    message: str = job["error"]["message"]
    assert url in message
    return message


def test_import_converts_and_fills_in_the_input(
    server: LiveServer, client: httpx.Client, files: FileServer, clip_bytes: bytes
) -> None:
    files.routes["/holiday.mp4"] = Body(clip_bytes)
    url = files.url("/holiday.mp4")
    # Options are members of the object; numbers and booleans may be JSON's own.
    queued = import_job(client, url, width=80, upscale=False, metadata={"trip": "alps"})
    assert queued["status"] == "queued"
    assert queued["input"] == {
        "filename": "holiday.mp4",
        "size_bytes": None,
        "content_type": None,
        "container": None,
        "duration_seconds": None,
        "video": None,
        "audio": None,
        "source_url": url,
    }
    assert queued["options"]["width"] == 80 and queued["metadata"] == {"trip": "alps"}
    job = wait_done(client, queued["id"])
    assert job["status"] == "completed", job
    assert job["input"]["size_bytes"] == len(clip_bytes)
    assert job["input"]["content_type"] == "video/mp4"
    assert job["input"]["video"]["width"] == 160 and job["input"]["source_url"] == url
    assert job["result"]["video"]["width"] == 80
    assert files.requests["/holiday.mp4"] == 1
    assert left_inputs(server) == []


def test_an_imported_input_that_already_is_what_is_asked_is_remuxed(
    client: httpx.Client, files: FileServer, clip_bytes: bytes
) -> None:
    files.routes["/as-is.mp4"] = Body(clip_bytes)
    queued = import_job(client, files.url("/as-is.mp4"))
    assert queued["options"]["video_codec"] == "h264"  # the input is not known yet
    job = wait_done(client, queued["id"])
    assert job["status"] == "completed", job
    # Decided once fetched and probed: the job's options say what it ran with.
    assert (job["options"]["video_codec"], job["options"]["audio_codec"]) == ("copy", "copy")
    assert job["options"]["crf"] is None and job["result"]["remuxed"] is True


def test_a_host_let_through_by_name_with_the_python_client(
    server: LiveServer, files: FileServer, clip_bytes: bytes
) -> None:
    # `localhost:<port>` is let through by name; whichever of its addresses answers is used.
    files.routes["/by-name.mp4"] = Body(clip_bytes)
    url = f"http://localhost:{files.port}/by-name.mp4"
    with VidqClient(server.url, server.key) as vidq:
        queued = vidq.convert_url(url, preset="gif", idempotency_key="by-name")
        assert vidq.convert_url(url, preset="gif", idempotency_key="by-name")["id"] == queued["id"]
        job = vidq.wait(queued["id"], timeout=60)
    assert job["status"] == "completed", job
    assert job["input"]["filename"] == "by-name.mp4" and job["input"]["source_url"] == url


def test_chunked_body_and_redirect_chain(
    server: LiveServer, client: httpx.Client, files: FileServer, clip_bytes: bytes
) -> None:
    files.routes["/chunked.mp4"] = Body(clip_bytes, length="chunked", piece_bytes=4096)
    for hop in range(1, 5):
        files.routes[f"/hop{hop}"] = redirect(f"/hop{hop + 1}", status=301 + hop % 2)
    files.routes["/hop5"] = redirect(files.url("/chunked.mp4"), status=307)
    job = wait_done(client, import_job(client, files.url("/hop1"), preset="gif")["id"])
    assert job["status"] == "completed", job
    assert job["input"]["size_bytes"] == len(clip_bytes)
    # Five redirects are followed; a sixth is one too many.
    files.routes["/hop0"] = redirect("/hop1")
    message = failed_with(client, files.url("/hop0"), "import_failed")
    assert "redirected more than 5 times" in message
    assert left_inputs(server) == []


def test_redirect_to_an_address_not_let_through_is_refused(
    server: LiveServer, client: httpx.Client, files: FileServer, elsewhere: FileServer
) -> None:
    files.routes["/moved"] = redirect(elsewhere.url("/clip.mp4"))
    message = failed_with(client, files.url("/moved"), "import_failed")
    assert f"redirected to {elsewhere.url('/clip.mp4')}, which was refused" in message
    assert "non-public address (127.0.0.1)" in message
    files.routes["/to-file"] = redirect("file:///etc/passwd")
    assert "http or https" in failed_with(client, files.url("/to-file"), "import_failed")
    assert sum(elsewhere.requests.values()) == 0
    assert left_inputs(server) == []


def test_http_errors_and_lying_lengths_fail_the_import(
    server: LiveServer, client: httpx.Client, files: FileServer, clip_bytes: bytes
) -> None:
    assert "HTTP 404 Not Found" in failed_with(client, files.url("/missing"), "import_failed")
    assert files.requests["/missing"] == 1  # not a failure that passes: no second try
    # Fewer bytes than declared: the connection ends early (tried again once, as it may pass).
    files.routes["/short"] = Body(clip_bytes, length=len(clip_bytes) + 5000)
    message = failed_with(client, files.url("/short"), "import_failed")
    assert f"of the {len(clip_bytes) + 5000} bytes its Content-Length declared" in message
    assert "(after 2 tries)" in message and files.requests["/short"] == 2
    # More bytes than declared.
    files.routes["/long"] = Body(clip_bytes, length=len(clip_bytes) - 3000)
    message = failed_with(client, files.url("/long"), "import_failed")
    assert f"more than the {len(clip_bytes) - 3000} bytes its Content-Length declared" in message
    assert left_inputs(server) == []


def test_a_source_that_fails_once_is_tried_again(
    server: LiveServer, client: httpx.Client, files: FileServer, clip_bytes: bytes
) -> None:
    files.routes["/flaky.mp4"] = Body(clip_bytes, fail_first=1)
    job = wait_done(client, import_job(client, files.url("/flaky.mp4"), preset="gif")["id"])
    assert job["status"] == "completed", job
    assert files.requests["/flaky.mp4"] == 2


def test_size_limit_trickle_and_non_media(
    server: LiveServer, client: httpx.Client, files: FileServer, clip_bytes: bytes
) -> None:
    big = os.urandom(MAX_UPLOAD_BYTES + 1)
    files.routes["/big-declared"] = Body(big)
    message = failed_with(client, files.url("/big-declared"), "import_failed")
    assert f"larger than the limit of {MAX_UPLOAD_BYTES} bytes" in message
    files.routes["/big-chunked"] = Body(big, length="chunked")
    message = failed_with(client, files.url("/big-chunked"), "import_failed")
    assert f"larger than the limit of {MAX_UPLOAD_BYTES} bytes" in message
    files.routes["/trickle"] = Body(clip_bytes, piece_bytes=500, pause_seconds=0.05)
    started = time.monotonic()
    message = failed_with(client, files.url("/trickle"), "import_failed")
    assert "too slow" in message and "below the minimum of 20000" in message
    assert time.monotonic() - started < 10
    files.routes["/notes.txt"] = Body(b"just some text\n" * 100, content_type="text/plain")
    message = failed_with(client, files.url("/notes.txt"), "unsupported_media")
    assert left_inputs(server) == []


@pytest.mark.parametrize("how", ["cancel", "delete"])
def test_cancel_or_delete_during_the_import_stops_it_and_keeps_nothing(
    server: LiveServer, client: httpx.Client, files: FileServer, how: str
) -> None:
    hold = threading.Event()
    path = f"/held-{how}.mp4"
    files.routes[path] = Body(os.urandom(512 * 1024), hold=hold)
    files.sent_first_piece.clear()
    try:
        job = import_job(client, files.url(path))
        assert files.sent_first_piece.wait(10)
        wait_for(lambda: left_inputs(server), what="the import's partial file")
        if how == "cancel":
            answer = client.post(f"/job/{job['id']}/cancel")
            assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
        else:
            assert client.delete(f"/job/{job['id']}").status_code == 204
        stopped = time.monotonic()
        wait_for(lambda: not left_inputs(server), timeout=2, what="the import to stop")
        assert time.monotonic() - stopped < 1.0
    finally:
        hold.set()
    time.sleep(0.3)
    assert left_inputs(server) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{other}/clip.mp4",  # loopback, but not the port let through
        "http://localhost:{other}/clip.mp4",
        "http://[::ffff:127.0.0.1]:{port}/clip.mp4",  # the entry names 127.0.0.1 by port
        "http://10.1.2.3/clip.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "ftp://127.0.0.1:{port}/clip.mp4",
        "gopher://example.com/",
        "not a url",
        "http:///no-host",
    ],
)
def test_submission_refuses_sources_that_may_not_be_fetched(
    client: httpx.Client, files: FileServer, elsewhere: FileServer, url: str
) -> None:
    url = url.format(port=files.port, other=elsewhere.port)
    problem = assert_problem(
        client.post("/convert", json={"source_url": url}), 422, "invalid_source"
    )
    assert "source_url" in problem["detail"]
    assert sum(elsewhere.requests.values()) == 0


def test_json_body_rules(client: httpx.Client, files: FileServer, clip_bytes: bytes) -> None:
    url = files.url("/rules.mp4")
    files.routes["/rules.mp4"] = Body(clip_bytes)
    post = client.post
    # Not JSON at all (or not UTF-8): 400. JSON that is not strict, or not an object: 422.
    for raw in (b"", b"{", b"source_url=x", b'{"source_url": "\xff"}'):
        answer = post("/convert", content=raw, headers={"Content-Type": "application/json"})
        assert_problem(answer, 400, "bad_request")
    for raw in (b'{"source_url": "x", "fps": NaN}', b"[1]", b'{"a": 1, "a": 2}', b"[" * 40):
        answer = post("/convert", content=raw, headers={"Content-Type": "application/json"})
        assert_problem(answer, 422, "invalid_option")
    assert_problem(post("/convert", json={"preset": "gif"}), 400, "bad_request")
    both = {"source_url": url, "upload_id": "8a6e0804-2bd0-4672-b79d-d97027f9071a"}
    assert_problem(post("/convert", json=both), 422, "invalid_source")
    assert_problem(post("/convert", json={"source_url": 5}), 422, "invalid_source")
    # Options: checked as in a form, every bad one named.
    answer = post(
        "/convert",
        json={"source_url": url, "width": -5, "crf": "abc", "fps": [1], "colour": "red"},
    )
    problem = assert_problem(answer, 422, "invalid_option")
    assert {e["field"] for e in problem["errors"]} == {"width", "crf", "fps", "colour"}
    # A number as a JSON number or as a string means the same; null means "not given".
    a = import_job(client, url, width=96, fps=12.5, start="0", poster=True, crf=None)
    b = import_job(client, url, width="96", fps="12.5", start=0, poster="true")
    assert a["options"] == b["options"] and a["options"]["fps"] == 12.5
    assert a["options"]["crf"] == b["options"]["crf"]  # the preset's
    assert import_job(client, url, renditions=[720, 360], format="hls")["options"][
        "renditions"
    ] == [
        720,
        360,
    ]
    for job in (a, b):
        assert wait_done(client, job["id"])["status"] == "completed"


def test_idempotent_import(client: httpx.Client, files: FileServer, clip_bytes: bytes) -> None:
    url = files.url("/once.mp4")
    files.routes["/once.mp4"] = Body(clip_bytes)
    headers = {"Idempotency-Key": "import-once"}
    first = client.post("/convert", json={"source_url": url, "preset": "gif"}, headers=headers)
    again = client.post("/convert", json={"source_url": url, "preset": "gif"}, headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/convert", json={"source_url": url, "preset": "mp3"}, headers=headers)
    assert_problem(other, 422, "idempotency_key_reused")
    assert wait_done(client, first.json()["id"])["status"] == "completed"


def test_url_allow_entries_are_checked_at_start() -> None:
    allowed = Settings(url_allow=" minio.internal:9000, 10.8.0.0/16,[fd00::5]:443,127.0.0.1 ")
    assert allowed.url_allow == "minio.internal:9000,10.8.0.0/16,[fd00::5]:443,127.0.0.1"
    assert len(allowed.address_policy.allowed) == 4
    for bad in ("host:99999", "10.0.0.0/33", "a b", "http://x", "[::1]x"):
        with pytest.raises(ValidationError, match="url_allow"):
            Settings(url_allow=bad)

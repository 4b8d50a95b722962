"""The HTTP API of API.md against a real server on loopback, with real ffmpeg."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import LiveServer, make_settings, running_server
from .helpers import (
    assert_problem,
    ffmpeg_children,
    post_convert,
    stored_blobs,
    submit_job,
    wait_done,
)


def test_convert_follow_download_delete(live_server: LiveServer, clip: Path) -> None:
    with live_server.client() as client:
        response = post_convert(client, clip, preset="mp4-h264", metadata='{"order": 7}')
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["location"] == f"/job/{job['id']}"
        assert int(response.headers["retry-after"]) > 0
        assert job["status"] == "queued" and job["queue_position"] == 1
        assert job["input"]["filename"] == "clip.mp4"
        assert job["input"]["size_bytes"] == clip.stat().st_size
        assert job["input"]["video"]["width"] == 160
        # The clip already is H.264 + AAC as the preset makes it: its streams are copied.
        assert job["options"]["format"] == "mp4" and job["options"]["video_codec"] == "copy"
        assert job["metadata"] == {"order": 7}

        done = wait_done(client, job["id"])
        assert done["status"] == "completed", done
        assert done["progress_percent"] == 100 and done["queue_position"] is None
        assert done["processing_seconds"] is not None and done["processing_seconds"] >= 0
        result = done["result"]
        assert result["filename"] == "clip.mp4" and result["content_type"] == "video/mp4"
        assert result["video"]["codec"] == "h264" and result["audio"]["codec"] == "aac"
        assert result["remuxed"] is True
        assert abs(result["duration_seconds"] - 1.0) < 0.2

        # The owner's key downloads it; so does the signed URL, with no key at all.
        owned = client.get(f"/job/{job['id']}/output")
        assert owned.status_code == 200 and len(owned.content) == result["size_bytes"]
        assert owned.headers["content-disposition"] == 'attachment; filename="clip.mp4"'
        signed = httpx.get(result["download_url"])
        assert signed.status_code == 200 and signed.content == owned.content
        head = httpx.head(result["download_url"])
        assert (
            head.status_code == 200 and int(head.headers["content-length"]) == result["size_bytes"]
        )
        part = httpx.get(result["download_url"], headers={"Range": "bytes=10-29"})
        assert part.status_code == 206 and part.content == owned.content[10:30]
        assert part.headers["content-range"] == f"bytes 10-29/{result['size_bytes']}"
        etag = owned.headers["etag"]
        again = client.get(f"/job/{job['id']}/output", headers={"If-None-Match": etag})
        assert again.status_code == 304

        assert client.delete(f"/job/{job['id']}").status_code == 204
        assert_problem(client.get(f"/job/{job['id']}"), 404, "not_found")
        assert_problem(httpx.get(result["download_url"]), 404, "not_found")
        assert_problem(client.delete(f"/job/{job['id']}"), 404, "not_found")
    files = live_server.settings.data_dir / "files"
    assert not stored_blobs(files), "the job's files are removed"


def test_raw_upload_with_query_options(live_server: LiveServer, clip: Path) -> None:
    with live_server.client() as client:
        response = client.post(
            "/convert",
            params={"filename": "holiday.mov", "preset": "webm-vp9", "width": "80"},
            content=clip.read_bytes(),
            headers={"Content-Type": "video/quicktime"},
        )
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["input"]["filename"] == "holiday.mov"
        assert job["input"]["content_type"] == "video/quicktime"
        done = wait_done(client, job["id"])
        assert done["status"] == "completed", done
        assert done["result"]["filename"] == "holiday.webm"
        assert done["result"]["video"]["codec"] == "vp9"
        video = done["result"]["video"]
        assert video["width"] == 80 and video["height"] in (44, 46)  # 45 kept even


def test_authentication(live_server: LiveServer) -> None:
    protected = [
        ("POST", "/convert"),
        ("GET", "/job/x"),
        ("DELETE", "/job/x"),
        ("POST", "/job/x/cancel"),
        ("GET", "/job/x/output"),
        ("GET", "/jobs"),
        ("GET", "/presets"),
        ("GET", "/account"),
        ("GET", "/metrics"),
    ]
    for key in (None, "vq_not-a-real-key"):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        for method, path in protected:
            response = httpx.request(method, live_server.url + path, headers=headers)
            assert_problem(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/", "/static/app.js"):
        assert httpx.get(live_server.url + path).status_code == 200, path
    assert httpx.get(live_server.url + "/healthz").json() == {"status": "ok"}


def test_owners_see_only_their_own_jobs(live_server: LiveServer, clip: Path) -> None:
    other_key = live_server.new_key("someone-else")
    with live_server.client() as mine, live_server.client(other_key) as theirs:
        job = submit_job(mine, clip)
        wait_done(mine, job["id"])
        for method, path in (
            ("GET", f"/job/{job['id']}"),
            ("GET", f"/job/{job['id']}/output"),
            ("POST", f"/job/{job['id']}/cancel"),
            ("DELETE", f"/job/{job['id']}"),
        ):
            assert_problem(theirs.request(method, path), 404, "not_found")
        assert theirs.get("/jobs").json() == {"jobs": [], "next_cursor": None}
        assert [j["id"] for j in mine.get("/jobs").json()["jobs"]] == [job["id"]]
        assert mine.get(f"/job/{job['id']}").status_code == 200


def test_get_job_etag_and_wait(live_server: LiveServer, clip: Path) -> None:
    with live_server.client() as client:
        job = submit_job(client, clip)
        done = wait_done(client, job["id"])
        first = client.get(f"/job/{job['id']}")
        assert first.json() == done and "retry-after" not in first.headers
        etag = first.headers["etag"]
        assert client.get(f"/job/{job['id']}", headers={"If-None-Match": etag}).status_code == 304
        assert (
            client.get(f"/job/{job['id']}", headers={"If-None-Match": '"other"'}).status_code == 200
        )
        for bad in ("0", "61", "-1", "soon"):
            assert_problem(
                client.get(f"/job/{job['id']}", params={"wait": bad}), 422, "invalid_option"
            )


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(make_settings(tmp_path, max_upload_bytes=200_000)) as live:
        yield live


def test_input_errors(small_server: LiveServer, clip: Path, tmp_path: Path) -> None:
    live_server = small_server
    files_dir = live_server.settings.data_dir / "files"

    def stored() -> list[Path]:
        return stored_blobs(files_dir)

    with live_server.client() as client:
        # 400: no file part, empty bodies, malformed multipart.
        assert_problem(
            client.post("/convert", data={"preset": "gif"}, files={"other": ("a", b"x")}),
            400,
            "bad_request",
        )
        assert_problem(
            client.post("/convert", content=b"", headers={"Content-Type": "video/mp4"}),
            400,
            "bad_request",
        )
        assert_problem(
            client.post("/convert", files={"file": ("a.mp4", b"", "video/mp4")}), 400, "bad_request"
        )
        assert_problem(
            client.post(
                "/convert",
                content=b"--x\r\nnonsense",
                headers={"Content-Type": "multipart/form-data; boundary=x"},
            ),
            400,
            "bad_request",
        )
        # 413: over the limit, by Content-Length or while streaming (chunked); nothing kept.
        big = b"\0" * 300_000
        body = assert_problem(
            client.post("/convert", content=big, headers={"Content-Type": "video/mp4"}),
            413,
            "too_large",
        )
        assert "200000" in body["detail"]
        chunked = client.post(
            "/convert",
            content=iter([big[:150_000], big[150_000:]]),
            headers={"Content-Type": "video/mp4"},
        )
        assert_problem(chunked, 413, "too_large")
        assert_problem(
            client.post("/convert", files={"file": ("big.mp4", big, "video/mp4")}), 413, "too_large"
        )
        # 415: none of the three forms.
        for ctype in ("text/plain", "image/png", "application/xml"):
            assert_problem(
                client.post("/convert", content=b"{}", headers={"Content-Type": ctype}),
                415,
                "unsupported_content_type",
            )
        # 400: a JSON body that names no input (test_imports has the rest of that form).
        assert_problem(client.post("/convert", json={}), 400, "bad_request")
        # 422 invalid_option: listed field by field; fails before the body is stored.
        bad = post_convert(client, clip, width="5", crf="99", preset="nope", colour="red")
        problem = assert_problem(bad, 422, "invalid_option")
        assert {e["field"] for e in problem["errors"]} >= {"width", "preset", "colour"}
        for field, value in (
            ("webhook_url", "ftp://example.com/x"),
            ("email", "someone@example.com"),  # no SMTP server configured
            ("metadata", "[1, 2]"),
            ("metadata", "{" + '"k": "' + "x" * 5000 + '"}'),
            ("fps", "500"),
            ("start", "-1"),
        ):
            problem = assert_problem(
                post_convert(client, clip, **{field: value}), 422, "invalid_option"
            )
            assert problem["errors"][0]["field"] == field
        raw = client.post(
            "/convert",
            params={"height": "9999"},
            content=clip.read_bytes(),
            headers={"Content-Type": "video/mp4"},
        )
        assert assert_problem(raw, 422, "invalid_option")["errors"][0]["field"] == "height"
        # An option that only fails against the probed input.
        beyond = assert_problem(post_convert(client, clip, start="30"), 422, "invalid_option")
        assert beyond["errors"][0]["field"] == "start"
        # 422 unsupported_media: not a video; nothing kept.
        noise = tmp_path / "noise.mp4"
        noise.write_bytes(bytes(range(256)) * 100)
        assert_problem(post_convert(client, noise), 422, "unsupported_media")
        # Framework errors are problems too.
        assert_problem(client.get("/no/such/path"), 404, "not_found")
        assert_problem(client.put("/convert"), 405, "method_not_allowed")
        assert_problem(client.get("/jobs", params={"limit": "0"}), 422, "invalid_option")
        assert_problem(client.get("/jobs", params={"status": "lost"}), 422, "invalid_option")
        assert_problem(client.get("/jobs", params={"cursor": "!!!"}), 422, "invalid_option")
    assert stored() == []
    assert not list((files_dir / ".partial").glob("*"))


def test_too_many_jobs_and_fifo_queue(tmp_path: Path, clip: Path) -> None:
    settings = make_settings(tmp_path, workers=0, max_unfinished_jobs=3)
    with running_server(settings) as live, live.client() as client:
        ids = [submit_job(client, clip)["id"] for _ in range(3)]
        positions = [client.get(f"/job/{i}").json()["queue_position"] for i in ids]
        assert positions == [1, 2, 3]
        queued = client.get(f"/job/{ids[0]}")
        assert queued.headers["retry-after"]
        refused = post_convert(client, clip)
        assert_problem(refused, 429, "too_many_jobs")
        assert int(refused.headers["retry-after"]) > 0
        # Cancelling a queued job keeps its record and frees a place.
        cancelled = client.post(f"/job/{ids[0]}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert_problem(client.post(f"/job/{ids[0]}/cancel"), 409, "conflict")
        assert [client.get(f"/job/{i}").json()["queue_position"] for i in ids[1:]] == [1, 2]
        assert post_convert(client, clip).status_code == 202
        # Deleting a queued job removes it from the queue.
        assert client.delete(f"/job/{ids[1]}").status_code == 204
        assert client.get(f"/job/{ids[2]}").json()["queue_position"] == 1
        # Listing: newest first, by status, a page at a time.
        listed = client.get("/jobs", params={"limit": 2}).json()
        assert len(listed["jobs"]) == 2 and listed["next_cursor"]
        rest = client.get("/jobs", params={"limit": 2, "cursor": listed["next_cursor"]}).json()
        assert rest["next_cursor"] is None
        all_ids = [j["id"] for j in listed["jobs"] + rest["jobs"]]
        assert len(all_ids) == 3 and ids[0] in all_ids and all_ids.index(ids[2]) > 0
        only = client.get("/jobs", params=[("status", "cancelled"), ("status", "completed")]).json()
        assert [j["id"] for j in only["jobs"]] == [ids[0]]


def test_cancel_and_delete_stop_running_ffmpeg(live_server: LiveServer, long_clip: Path) -> None:
    with live_server.client() as client:
        for action in ("cancel", "delete"):
            job = submit_job(client, long_clip, preset="webm-vp9")
            deadline = time.monotonic() + 20
            while (
                client.get(f"/job/{job['id']}").json()["status"] != "running"
                or not ffmpeg_children()
            ):
                assert time.monotonic() < deadline, "the job did not start"
                time.sleep(0.05)
            asked = time.monotonic()
            if action == "cancel":
                response = client.post(f"/job/{job['id']}/cancel")
                assert response.status_code == 200 and response.json()["status"] == "cancelled"
            else:
                assert client.delete(f"/job/{job['id']}").status_code == 204
            while ffmpeg_children():
                assert time.monotonic() - asked < 2.0, "ffmpeg still runs 2 s after the cancel"
                time.sleep(0.05)
            time.sleep(0.5)
            if action == "cancel":
                final = client.get(f"/job/{job['id']}").json()
                assert final["status"] == "cancelled" and final["result"] is None
            else:
                assert_problem(client.get(f"/job/{job['id']}"), 404, "not_found")
    tmp = live_server.settings.tmp_dir
    assert not list(tmp.iterdir()), "temporary files are removed"
    files = live_server.settings.data_dir / "files"
    assert not stored_blobs(files)


def test_signed_urls(tmp_path: Path, clip: Path) -> None:
    settings = make_settings(tmp_path, retention_hours=3 / 3600)  # outputs expire after 3 s
    with running_server(settings) as live, live.client() as client:
        job = submit_job(client, clip)
        done = wait_done(client, job["id"])
        url = done["result"]["download_url"]
        assert httpx.get(url).status_code == 200
        tampered = url.replace("signature=", "signature=A")
        assert_problem(httpx.get(tampered), 401, "unauthorized")
        later = url.replace("expires=", "expires=9")
        assert_problem(httpx.get(later), 401, "unauthorized")
        other = httpx.get(url.replace(job["id"], "00000000-0000-0000-0000-000000000000"))
        assert_problem(other, 401, "unauthorized")
        time.sleep(3.2)
        assert_problem(httpx.get(url), 410, "gone")
        assert_problem(client.get(f"/job/{job['id']}/output"), 410, "gone")


def test_presets_account_metrics(live_server: LiveServer) -> None:
    with live_server.client() as client:
        presets = {p["name"]: p for p in client.get("/presets").json()["presets"]}
        for name in ("mp4-h264", "mp4-h264-720p", "webm-vp9", "mp4-av1", "gif", "mp3", "m4a"):
            assert name in presets and presets[name]["description"]
        assert presets["mp4-h264"]["options"]["format"] == "mp4"
        account = client.get("/account").json()
        assert account["name"] == "tester" and account["webhook_secret"].startswith("whsec_")
        text = client.get("/metrics").text
        for metric in (
            "vidq_jobs{",
            "vidq_queue_depth",
            "vidq_uploads_total",
            "vidq_processing_seconds",
        ):
            assert metric in text


def test_openapi_document_lists_the_contract(live_server: LiveServer) -> None:
    spec = httpx.get(live_server.url + "/openapi.json").json()
    paths = spec["paths"]
    for path, method in (
        ("/convert", "post"),
        ("/job/{job_id}", "get"),
        ("/job/{job_id}", "delete"),
        ("/job/{job_id}/cancel", "post"),
        ("/job/{job_id}/output", "get"),
        ("/jobs", "get"),
        ("/presets", "get"),
        ("/account", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ):
        assert method in paths[path], (path, method)
    assert "multipart/form-data" in paths["/convert"]["post"]["requestBody"]["content"]

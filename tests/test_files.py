"""Files of an output (API.md "Files of an output"): the Job's `result.files`, `base_url` and
`manifests`, the owner's and the signed routes, a package's ZIP, redirects to a bucket,
and every file going with its job.

Completed jobs are made here the way a worker completes them: real small files stored
under the keys `blobs.file_key` names, then `queue.complete` with `result.files`.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import os
import time
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from vidq.config import Settings
from vidq.db.migrate import migrated_database
from vidq.jobs import blobs, queue
from vidq.jobs.accounts import account_for_key
from vidq.jobs.output_files import OutputFile, served_content_type
from vidq.jobs.package_zip import store_package_zip
from vidq.jobs.runtime import Runtime
from vidq.jobs.signing import files_token, files_token_valid, parse_files_token
from vidq.jobs.views import NotificationPayloads
from vidq.storage import LocalStorage, Storage, open_storage
from vidq.storage.memory import MemoryStorage
from vidq.worker.janitor import Janitor

from .conftest import LiveServer, make_s3, make_settings, running_server
from .helpers import assert_problem, submit_job, wait_done
from .media_clips import make_clip
from .notify_receivers import INPUT_INFO

PAYLOADS = NotificationPayloads(secret="unused", public_url="http://vidq.test")
HLS = "application/vnd.apple.mpegurl"


@dataclass(frozen=True)
class Made:
    """A file a test job owns: where it is in the job, its role and its bytes."""

    path: str
    role: str
    data: bytes
    content_type: str = "application/octet-stream"

    def listed(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "role": self.role,
            "size_bytes": len(self.data),
            "content_type": self.content_type,
        }


MASTER = b"""#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=160x90,CODECS="avc1.64000c,mp4a.40.2"
720p.m3u8
"""
MEDIA_PLAYLIST = b"""#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="720p/init.mp4"
#EXTINF:2.0,
720p/seg_00001.m4s
#EXTINF:1.0,
720p/seg_00002.m4s
#EXT-X-ENDLIST
"""
MPD = b"""<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT3S">
 <Period><AdaptationSet mimeType="video/mp4"><Representation id="720p" bandwidth="900000">
  <SegmentTemplate initialization="720p/init.mp4" media="720p/seg_$Number%05d$.m4s"
   startNumber="1" duration="2" timescale="1"/>
 </Representation></AdaptationSet></Period>
</MPD>
"""


def package_files() -> list[Made]:
    """A small HLS + DASH package over one set of fMP4 segments, a poster and a storyboard."""
    return [
        Made("master.m3u8", "manifest", MASTER, HLS),
        Made("manifest.mpd", "manifest", MPD, "application/dash+xml"),
        Made("720p.m3u8", "playlist", MEDIA_PLAYLIST, HLS),
        Made("720p/init.mp4", "init", os.urandom(900), "video/mp4"),
        Made("720p/seg_00001.m4s", "segment", os.urandom(70_000), "video/mp4"),
        Made("720p/seg_00002.m4s", "segment", os.urandom(30_000), "video/mp4"),
        Made("poster.jpg", "poster", b"\xff\xd8\xff\xe0" + os.urandom(2000), "image/jpeg"),
        Made("storyboard.jpg", "storyboard", b"\xff\xd8\xff\xe0" + os.urandom(3000), "image/jpeg"),
        Made(
            "storyboard.vtt",
            "storyboard_vtt",
            b"WEBVTT\n\n00:00.000 --> 00:01.000\nstoryboard.jpg#xywh=0,0,160,90\n",
            "text/vtt",
        ),
    ]


async def _put(storage: Storage, key: str, data: bytes) -> None:
    writer = storage.writer(key)
    await writer.write(data)
    await writer.commit()


async def _complete(
    settings: Settings,
    api_key: str,
    files: Sequence[Made],
    *,
    package: bool,
    retention_seconds: float,
    list_files: bool,
    zip_package: bool,
) -> str:
    storage = open_storage(settings.resolved_storage_url, s3_endpoint_url=settings.s3_endpoint_url)
    async with migrated_database(settings.resolved_database_url) as db:
        account = await account_for_key(db, api_key)
        assert account is not None
        job_id = str(uuid.uuid4())
        new = queue.NewJob(
            id=job_id,
            owner_id=account.id,
            input_filename="clip.mov",
            input_content_type="video/quicktime",
            input_size_bytes=1000,
            input_sha256="0" * 64,
            input_info=INPUT_INFO,
            options={"preset": "hls" if package else "mp4-h264"},
            metadata={},
            webhook_url=None,
            email=None,
        )
        await queue.submit(db, new, max_unfinished=100)
        claim = await queue.claim_next(db, worker_id="test-worker", lease_seconds=30)
        assert claim is not None and claim.job.id == job_id
        main_key = blobs.package_zip_key(job_id) if package else blobs.output_key(job_id, "mp4")
        stored = asyncio.Semaphore(16)

        async def store(file: Made) -> None:
            async with stored:
                key = blobs.file_key(job_id, file.path, role=file.role, main_key=main_key)
                await _put(storage, key, file.data)

        await asyncio.gather(*(store(file) for file in files))
        listing = [file.listed() for file in files]
        result: dict[str, Any] = {"duration_seconds": 3.0, "video": None, "audio": None}
        if package:
            if zip_package:
                size = await store_package_zip(storage, job_id, listing)
            else:
                await _put(storage, main_key, b"PK\x05\x06" + bytes(18))  # an empty ZIP
                size = 22
            result |= {"filename": "clip.zip", "size_bytes": size}
            result |= {"content_type": "application/zip"}
            result["manifests"] = {"hls": "master.m3u8", "dash": "manifest.mpd"}
        else:
            (main,) = (file for file in files if file.role == "main")
            result |= {"filename": main.path, "size_bytes": len(main.data)}
            result |= {"content_type": main.content_type}
        if list_files:
            result["files"] = listing
        done = await queue.complete(
            db,
            claim,
            output_key=main_key,
            result=result,
            retention_seconds=retention_seconds,
            payloads=PAYLOADS,
        )
        assert done is not None
    return job_id


def complete_job(
    live: LiveServer,
    files: Sequence[Made],
    *,
    package: bool = True,
    retention_seconds: float = 3600,
    list_files: bool = True,
    zip_package: bool = True,
) -> dict[str, Any]:
    """Store `files` as a worker would and complete a job of the live server's owner with
    them; returns its Job document."""
    job_id = asyncio.run(
        _complete(
            live.settings,
            live.key,
            files,
            package=package,
            retention_seconds=retention_seconds,
            list_files=list_files,
            zip_package=zip_package,
        )
    )
    with live.client() as client:
        job: dict[str, Any] = client.get(f"/job/{job_id}").json()
    assert job["status"] == "completed", job
    return job


def raw_get(url: str, raw_path: str, headers: dict[str, str] | None = None) -> int:
    """The status of a GET sent with `raw_path` exactly as written (no client normalising
    `..` or re-encoding)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", raw_path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def stored_keys(storage: Storage, prefix: str) -> list[str]:
    async def listed() -> list[str]:
        return sorted([key async for key, _ in storage.keys(prefix)])

    return asyncio.run(listed())


@pytest.fixture
def server_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, workers=0)  # jobs are completed by the tests themselves


# --- the Job document ---------------------------------------------------------------------


def test_single_file_job_lists_its_main_file(live_server: LiveServer, clip: Path) -> None:
    data = clip.read_bytes()
    poster = Made("poster.jpg", "poster", b"\xff\xd8\xff\xe0" + os.urandom(500), "image/jpeg")
    job = complete_job(
        live_server, [Made("clip.mp4", "main", data, "video/mp4"), poster], package=False
    )
    result = job["result"]
    assert result["files"] == [
        {"path": "clip.mp4", "role": "main", "size_bytes": len(data), "content_type": "video/mp4"},
        poster.listed(),
    ]
    assert "manifests" not in result, "only a streaming package has manifests"
    base = result["base_url"]
    assert base.startswith(live_server.url + "/s/") and base.endswith("/")
    whole = httpx.get(base + "clip.mp4")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["access-control-allow-origin"] == "*"
    assert httpx.get(result["download_url"]).content == data
    still = httpx.get(base + "poster.jpg")
    assert still.content == poster.data and still.headers["content-type"] == "image/jpeg"
    with live_server.client() as client:
        owned = client.get(f"/job/{job['id']}/files/clip.mp4")
        assert owned.status_code == 200 and owned.content == data
        assert "access-control-allow-origin" not in owned.headers
        assert_problem(
            httpx.get(f"{live_server.url}/job/{job['id']}/files/clip.mp4"), 401, "unauthorized"
        )
        with live_server.client(live_server.new_key("someone-else")) as other:
            assert_problem(other.get(f"/job/{job['id']}/files/clip.mp4"), 404, "not_found")


def test_a_job_completed_before_files_were_listed_has_its_main_file(
    live_server: LiveServer, clip: Path
) -> None:
    data = clip.read_bytes()
    job = complete_job(
        live_server, [Made("clip.mp4", "main", data, "video/mp4")], package=False, list_files=False
    )
    listed = {
        "path": "clip.mp4",
        "role": "main",
        "size_bytes": len(data),
        "content_type": "video/mp4",
    }
    assert job["result"]["files"] == [listed]
    assert httpx.get(job["result"]["base_url"] + "clip.mp4").content == data


# --- a streaming package, as a player sees it ---------------------------------------------


def test_a_player_follows_a_package_under_one_signature(live_server: LiveServer) -> None:
    files = package_files()
    by_path = {file.path: file for file in files}
    job = complete_job(live_server, files)
    result = job["result"]
    base = result["base_url"]
    assert result["files"] == [file.listed() for file in files]
    assert result["manifests"] == {"hls": base + "master.m3u8", "dash": base + "manifest.mpd"}

    # HLS: the master playlist, then each URI in it resolved against the URL it came from.
    master = httpx.get(result["manifests"]["hls"], headers={"Origin": "https://player.example"})
    assert master.status_code == 200 and master.content == MASTER
    assert master.headers["content-type"].startswith(HLS)
    assert master.headers["access-control-allow-origin"] == "*"
    media_url = urljoin(str(master.url), _uris(master.text)[0])
    media = httpx.get(media_url)
    assert media.content == MEDIA_PLAYLIST and media.headers["content-type"].startswith(HLS)
    for uri in _uris(media.text):
        fetched = httpx.get(urljoin(media_url, uri))
        path = urljoin(media_url, uri).removeprefix(base)
        assert fetched.status_code == 200 and fetched.content == by_path[path].data
        assert fetched.headers["content-type"] == "video/mp4"
        assert fetched.headers["access-control-allow-origin"] == "*"
    dash = httpx.get(result["manifests"]["dash"])
    assert dash.content == MPD and dash.headers["content-type"] == "application/dash+xml"
    vtt = httpx.get(base + "storyboard.vtt")
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert httpx.get(base + "storyboard.jpg").headers["content-type"] == "image/jpeg"

    # The download_url of a package is its ZIP, stored uncompressed.
    download = httpx.get(result["download_url"])
    assert download.status_code == 200 and len(download.content) == result["size_bytes"]
    assert download.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    assert archive.namelist() == [file.path for file in files]
    for info in archive.infolist():
        assert info.compress_type == zipfile.ZIP_STORED
        assert archive.read(info) == by_path[info.filename].data


def _uris(playlist: str) -> list[str]:
    """The URIs an HLS playlist refers to: its URI lines and URI attributes (EXT-X-MAP,
    EXT-X-MEDIA)."""
    uris = []
    for line in playlist.splitlines():
        if line.startswith("#") and 'URI="' in line:
            uris.append(line.split('URI="', 1)[1].split('"', 1)[0])
        elif line and not line.startswith("#"):
            uris.append(line)
    return uris


def test_a_package_the_worker_made_plays_from_its_manifest(tmp_path: Path) -> None:
    """A real HLS package from the worker: every URI its playlists hold, resolved from the
    manifest's URL, is a file the job lists, served under the same signature."""
    clip = make_clip(tmp_path / "two.mp4", seconds=2, size=(320, 180), channels=2)
    with running_server(make_settings(tmp_path)) as live, live.client() as client:
        job = submit_job(client, clip, preset="hls", renditions="180", poster="true")
        done = wait_done(client, job["id"])
        assert done["status"] == "completed", done["error"]
        result = done["result"]
        base = result["base_url"]
        listed = {file["path"]: file for file in result["files"]}
        reached = set()
        pending = [result["manifests"]["hls"]]
        while pending:
            url = pending.pop()
            answer = httpx.get(url)
            assert answer.status_code == 200, url
            path = url.removeprefix(base)
            reached.add(path)
            assert len(answer.content) == listed[path]["size_bytes"]
            assert answer.headers["access-control-allow-origin"] == "*"
            if path.endswith(".m3u8"):
                assert answer.headers["content-type"].startswith(HLS)
                pending += [urljoin(url, uri) for uri in _uris(answer.text)]
            else:
                assert answer.headers["content-type"] == "video/mp4"
        roles = {listed[path]["role"] for path in reached}
        assert roles == {"manifest", "playlist", "init", "segment"}
        assert set(listed) - reached == {"poster.jpg"}
        assert httpx.get(base + "poster.jpg").headers["content-type"] == "image/jpeg"


def test_range_head_etag_on_both_routes(live_server: LiveServer) -> None:
    files = package_files()
    segment = files[4].data
    job = complete_job(live_server, files)
    size = len(segment)
    signed = job["result"]["base_url"] + "720p/seg_00001.m4s"
    with live_server.client() as owner:
        for get, head, url in (
            (httpx.get, httpx.head, signed),
            (owner.get, owner.head, f"/job/{job['id']}/files/720p/seg_00001.m4s"),
        ):
            whole = get(url)
            assert whole.status_code == 200 and whole.content == segment
            assert whole.headers["accept-ranges"] == "bytes"
            etag = whole.headers["etag"]
            heads = head(url)
            assert heads.status_code == 200 and heads.content == b""
            assert heads.headers["content-length"] == str(size) and heads.headers["etag"] == etag
            part = get(url, headers={"Range": "bytes=100-199"})
            assert part.status_code == 206 and part.content == segment[100:200]
            assert part.headers["content-range"] == f"bytes 100-199/{size}"
            assert get(url, headers={"Range": "bytes=-10"}).content == segment[-10:]
            stale = get(url, headers={"Range": "bytes=0-0", "If-Range": '"other"'})
            assert stale.status_code == 200 and stale.content == segment
            outside = get(url, headers={"Range": f"bytes={size}-"})
            assert_problem(outside, 416, "range_not_satisfiable")
            assert outside.headers["content-range"] == f"bytes */{size}"
            cached = get(url, headers={"If-None-Match": etag})
            assert cached.status_code == 304 and cached.headers["etag"] == etag
        assert outside.headers.get("access-control-allow-origin") is None
    assert (
        httpx.get(signed, headers={"Range": f"bytes={size}-"}).headers[
            "access-control-allow-origin"
        ]
        == "*"
    ), "a player sees errors of the signed form too"


def test_cors_preflight_on_the_signed_form(live_server: LiveServer) -> None:
    job = complete_job(live_server, package_files())
    url = job["result"]["base_url"] + "720p/seg_00001.m4s"
    preflight = httpx.options(
        url,
        headers={
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert "range" in preflight.headers["access-control-allow-headers"].lower()
    exposed = preflight.headers["access-control-expose-headers"].lower()
    assert "content-range" in exposed and "etag" in exposed


def test_openapi_documents_both_routes(live_server: LiveServer) -> None:
    paths = httpx.get(live_server.url + "/openapi.json").json()["paths"]
    for path in ("/job/{job_id}/files/{path}", "/s/{token}/{path}"):
        assert {"get", "head"} <= set(paths[path]), path
        assert {"200", "206", "302", "304", "404", "410", "416"} <= set(
            paths[path]["get"]["responses"]
        )
    assert "security" not in paths["/s/{token}/{path}"]["get"], "the signed form needs no key"


# --- what is not served -------------------------------------------------------------------


def test_only_listed_paths_inside_the_job_are_served(live_server: LiveServer) -> None:
    job = complete_job(live_server, package_files())
    job_id, base = job["id"], job["result"]["base_url"]
    # A blob under the job's folder that the job does not list is not served either.
    storage = open_storage(live_server.settings.resolved_storage_url)
    asyncio.run(_put(storage, blobs.output_file_key(job_id, "secret.txt"), b"not listed"))
    signed_root = urlsplit(base).path  # /s/<token>/
    owner_root = f"/job/{job_id}/files/"
    auth = {"Authorization": f"Bearer {live_server.key}"}
    attempts = [
        "../../../etc/passwd",
        "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "..%2f..%2fhealthz",
        "720p/../master.m3u8",
        "720p/%2e%2e/master.m3u8",
        "./master.m3u8",
        "720p//seg_00001.m4s",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "720p%5cseg_00001.m4s",
        "..%5c..%5cwindows%5cwin.ini",
        "master.m3u8%00.jpg",
        "%252e%252e/%252e%252e/etc/passwd",
        f"../{job_id}.zip",
        "secret.txt",
        "720p/",
        "",
        "no-such-file.m4s",
    ]
    for attempt in attempts:
        assert raw_get(live_server.url, signed_root + attempt) == 404, attempt
        assert raw_get(live_server.url, owner_root + attempt, auth) == 404, attempt
    assert raw_get(live_server.url, signed_root + "720p\\seg_00001.m4s") == 404
    assert raw_get(live_server.url, signed_root + "720p/seg_00001.m4s") == 200
    assert raw_get(live_server.url, signed_root + "720p%2Fseg_00001.m4s") == 200


def test_tokens_are_checked(live_server: LiveServer) -> None:
    job = complete_job(live_server, package_files())
    base = job["result"]["base_url"]
    token = urlsplit(base).path.split("/")[2]
    job_id, expires, signature = token.split(".")
    forged = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    prefix = f"{live_server.url}/s/"
    assert_problem(
        httpx.get(f"{prefix}{job_id}.{expires}.{forged}/master.m3u8"), 401, "unauthorized"
    )
    later = int(expires) + 3600
    assert_problem(
        httpx.get(f"{prefix}{job_id}.{later}.{signature}/master.m3u8"), 401, "unauthorized"
    )
    for malformed in ("x", f"{job_id}.{expires}", f"{job_id}..{signature}", f"{token}.x", "%00"):
        assert_problem(httpx.get(f"{prefix}{malformed}/master.m3u8"), 404, "not_found")
    # The download link's signature is not a files token, nor the reverse.
    download_signature = httpx.URL(job["result"]["download_url"]).params["signature"]
    stolen = f"{prefix}{job_id}.{expires}.{download_signature}/master.m3u8"
    assert_problem(httpx.get(stolen), 401, "unauthorized")
    assert httpx.get(base + "master.m3u8").status_code == 200


def test_expired_files_are_gone(live_server: LiveServer) -> None:
    # The link's expiry is in whole seconds, at most a second before the job's own.
    job = complete_job(live_server, package_files(), retention_seconds=2)
    base = job["result"]["base_url"]
    assert httpx.get(base + "master.m3u8").status_code == 200
    time.sleep(2.2)
    gone = httpx.get(base + "master.m3u8")
    assert_problem(gone, 410, "gone")
    assert gone.headers["access-control-allow-origin"] == "*"
    assert_problem(httpx.get(job["result"]["download_url"]), 410, "gone")
    with live_server.client() as client:
        assert_problem(client.get(f"/job/{job['id']}/files/master.m3u8"), 410, "gone")


# --- on a bucket, bytes skip the API ------------------------------------------------------


def test_media_redirects_to_the_bucket_and_playlists_do_not(s3: str, tmp_path: Path) -> None:
    make_s3(s3, "vidq-files")
    files = package_files()
    by_path = {file.path: file for file in files}
    settings = make_settings(
        tmp_path, workers=0, storage_url="s3://vidq-files/files", s3_endpoint_url=s3
    )
    with running_server(settings) as live, live.client() as owner:
        job = complete_job(live, files)
        base = job["result"]["base_url"]
        for path in ("720p/init.mp4", "720p/seg_00001.m4s", "poster.jpg", "storyboard.jpg"):
            for answer in (httpx.get(base + path), owner.get(f"/job/{job['id']}/files/{path}")):
                assert answer.status_code == 302, (path, answer.text)
                location = answer.headers["location"]
                assert location.startswith(s3 + "/vidq-files/files/outputs/")
            assert answer.headers.get("access-control-allow-origin") is None
            signed = httpx.get(base + path)
            assert signed.headers["access-control-allow-origin"] == "*"
            fetched = httpx.get(signed.headers["location"])
            assert fetched.status_code == 200 and fetched.content == by_path[path].data
            assert fetched.headers["content-type"] == served_content_type(
                OutputFile.from_json(by_path[path].listed())
            )
        # Playlists, manifests and text tracks refer to others by relative paths: served here.
        for path in ("master.m3u8", "720p.m3u8", "manifest.mpd", "storyboard.vtt"):
            served = httpx.get(base + path)
            assert served.status_code == 200 and served.content == by_path[path].data
        download = httpx.get(job["result"]["download_url"])
        assert download.status_code == 302
        archive = httpx.get(download.headers["location"])
        assert archive.headers["content-disposition"] == 'attachment; filename="clip.zip"'
        assert zipfile.ZipFile(io.BytesIO(archive.content)).testzip() is None
    # With redirects off (a bucket clients cannot reach) vidq streams every file itself.
    settings = make_settings(
        tmp_path / "streaming",
        workers=0,
        storage_url="s3://vidq-files/streamed",
        s3_endpoint_url=s3,
        s3_redirect_downloads=False,
    )
    with running_server(settings) as live:
        job = complete_job(live, files)
        streamed = httpx.get(job["result"]["base_url"] + "720p/seg_00001.m4s")
        assert streamed.status_code == 200
        assert streamed.content == by_path["720p/seg_00001.m4s"].data
        zipped = httpx.get(job["result"]["download_url"])
        assert (
            zipped.status_code == 200
            and zipfile.ZipFile(io.BytesIO(zipped.content)).testzip() is None
        )


# --- a job owns all its files, however many -----------------------------------------------


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_hundreds_of_files_go_with_their_job(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    overrides: dict[str, Any] = {"workers": 0}
    if backend == "s3":
        endpoint = request.getfixturevalue("s3")
        make_s3(endpoint, "vidq-many")
        overrides |= {"storage_url": "s3://vidq-many/files", "s3_endpoint_url": endpoint}
    settings = make_settings(tmp_path, **overrides)
    segments = [
        Made(f"{height}p/seg_{number:05d}.m4s", "segment", os.urandom(64))
        for height in (1080, 480, 360)
        for number in range(1, 65)
    ]
    files = [*package_files(), *segments]
    storage = open_storage(settings.resolved_storage_url, s3_endpoint_url=settings.s3_endpoint_url)
    with running_server(settings) as live, live.client() as client:
        deleted = complete_job(live, files, zip_package=False)
        expiring = complete_job(live, files, zip_package=False, retention_seconds=1)
        owned = stored_keys(storage, f"outputs/{deleted['id']}")
        assert len(owned) == len(files) > 200

        assert client.delete(f"/job/{deleted['id']}").status_code == 204
        assert stored_keys(storage, f"outputs/{deleted['id']}") == []
        assert asyncio.run(storage.size(blobs.package_zip_key(deleted["id"]))) is None

        time.sleep(1.1)
        counts = asyncio.run(_sweep(live.settings))
        assert counts["expired_outputs"] == 1
        assert stored_keys(storage, f"outputs/{expiring['id']}") == []
        assert asyncio.run(storage.size(blobs.package_zip_key(expiring["id"]))) is None
        assert_problem(httpx.get(expiring["result"]["base_url"] + "master.m3u8"), 410, "gone")
        assert stored_keys(storage, "outputs") == []


async def _sweep(settings: Settings) -> dict[str, int]:
    runtime = await Runtime.open(settings)
    try:
        return await Janitor(runtime).sweep()
    finally:
        await runtime.close()


# --- the pieces ---------------------------------------------------------------------------


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    yield LocalStorage(tmp_path / "files") if request.param == "local" else MemoryStorage()


async def test_package_zip_holds_every_file_stored(store: Storage) -> None:
    job_id = str(uuid.uuid4())
    files = [*package_files(), Made("720p/empty.m4s", "segment", b"")]
    big = Made("1080p/seg_00001.m4s", "segment", os.urandom(3 * 1024 * 1024 + 17))
    files.append(big)
    for file in files:
        await _put(store, blobs.file_key(job_id, file.path, role=file.role), file.data)
    size = await store_package_zip(store, job_id, [file.listed() for file in files])
    blob = b"".join([chunk async for chunk in store.read(blobs.package_zip_key(job_id))])
    assert len(blob) == size == await store.size(f"outputs/{job_id}.zip")
    archive = zipfile.ZipFile(io.BytesIO(blob))
    assert archive.namelist() == [file.path for file in files]
    for file, info in zip(files, archive.infolist(), strict=True):
        assert info.compress_type == zipfile.ZIP_STORED and info.file_size == len(file.data)
        assert archive.read(info) == file.data


async def test_package_zip_of_a_file_not_as_listed_leaves_nothing(store: Storage) -> None:
    job_id = str(uuid.uuid4())
    segment = Made("720p/seg_00001.m4s", "segment", os.urandom(1000))
    await _put(store, blobs.output_file_key(job_id, segment.path), segment.data)
    wrong = {**segment.listed(), "size_bytes": 999}
    with pytest.raises(RuntimeError):
        await store_package_zip(store, job_id, [wrong])
    missing = Made("720p/seg_00002.m4s", "segment", b"x").listed()
    with pytest.raises(FileNotFoundError):
        await store_package_zip(store, job_id, [segment.listed(), missing])
    assert await store.size(blobs.package_zip_key(job_id)) is None
    with pytest.raises(ValueError):  # a package has no main file
        await store_package_zip(store, job_id, [{**segment.listed(), "role": "main"}])


def test_where_each_file_is_stored() -> None:
    job_id = str(uuid.uuid4())
    main = blobs.output_key(job_id, "mp4")
    assert blobs.file_key(job_id, "clip.mp4", role="main", main_key=main) == main
    assert blobs.file_key(job_id, "720p/seg_00001.m4s", role="segment", main_key=main) == (
        f"outputs/{job_id}/720p/seg_00001.m4s"
    )
    assert blobs.file_key(job_id, "poster.jpg", role="poster") == f"outputs/{job_id}/poster.jpg"
    assert blobs.package_zip_key(job_id) == f"outputs/{job_id}.zip"
    with pytest.raises(ValueError):
        blobs.file_key(job_id, "clip.mp4", role="main")
    for bad in (
        "",
        "/abs",
        "a/../b",
        "..",
        ".",
        "a//b",
        "a/",
        "a\\b",
        "a\x00b",
        "a\nb",
        "x" * 1025,
    ):
        assert not blobs.is_job_path(bad), bad
        with pytest.raises(ValueError):
            blobs.output_file_key(job_id, bad)
    for good in ("master.m3u8", "720p/seg_00001.m4s", "holiday 2.mp4", "...mp4", "é.vtt"):
        assert blobs.is_job_path(good), good


def test_files_token() -> None:
    job_id = str(uuid.uuid4())
    token = files_token("key", job_id, 1_900_000_000)
    assert token.startswith(f"{job_id}.1900000000.")
    assert token == files_token("key", job_id, 1_900_000_000)
    parsed = parse_files_token(token)
    assert parsed is not None and parsed.job_id == job_id
    assert parsed.expires_unix == 1_900_000_000
    assert files_token_valid("key", parsed)
    assert not files_token_valid("other key", parsed)
    for bad in ("", token + "=", token.upper(), token.replace(".", "/", 1), f"{token}/x"):
        assert parse_files_token(bad) is None, bad


@pytest.mark.parametrize(
    ("path", "role", "expected"),
    [
        ("master.m3u8", "manifest", "application/vnd.apple.mpegurl"),
        ("manifest.mpd", "manifest", "application/dash+xml"),
        ("720p/init.mp4", "init", "video/mp4"),
        ("audio/seg_00001.m4s", "segment", "video/mp4"),
        ("poster.jpg", "poster", "image/jpeg"),
        ("storyboard.vtt", "storyboard_vtt", "text/vtt"),
        ("holiday.webm", "main", "recorded/type"),
        ("captions.xyz", "subtitles", "recorded/type"),
    ],
)
def test_content_types(path: str, role: str, expected: str) -> None:
    file = OutputFile(path=path, role=role, size_bytes=1, content_type="recorded/type")
    assert served_content_type(file) == expected

"""Hostile input through the HTTP API of a live server: nothing leaks, nothing falls over.

The corpus (tests/hostile_media.py) points every playlist and script at a `Tripwire`, a
named pipe that records any attempt to read it, so "ffmpeg never read it" is observed
rather than inferred. Each hostile upload must be refused (`422 unsupported_media`; `400`
for an empty body, as API.md says) or end `failed` with a clear error; never a 5xx, never a
completed job with the secret in its output, and `/healthz` answers 200 after every one.
Files that are media with surprises (a zip appended, a playlist riding in an AVI) are
converted as the media they are, and hostile filenames stay data: no path, no header
injection, RFC 6266 `filename*` for names that are not ASCII.
"""

from __future__ import annotations

import io
import re
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from vidq.config import Settings
from vidq.jobs.options import resolve_options
from vidq.media.command import build_command
from vidq.media.info import MediaInfo, VideoInfo

from .conftest import LiveServer, module_server
from .helpers import assert_problem, stored_blobs, wait_done
from .hostile_media import (
    Tripwire,
    avi_with_playlist,
    concat_script,
    hls_master_playlist,
    hls_playlist,
    raw_avi,
    secret_text,
    subfile_playlist,
    xbin_playlist,
)
from .media_clips import FFMPEG, make_clip, make_random_bytes, make_truncated, make_y4m_bomb

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
STORED_NAME = re.compile(rf"(inputs/{UUID}|outputs/{UUID}\.[a-z0-9]+)")


@dataclass
class Corpus:
    """The hostile files, and the secret they all try to reach."""

    folder: Path
    tripwire: Tripwire
    files: dict[str, bytes]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    folder = tmp_path_factory.mktemp("corpus")
    # Named like an HLS segment, so an unguarded HLS demuxer would open it.
    with Tripwire(folder / "secret.ts", secret_text()) as tripwire:
        target = tripwire.path
        (folder / "child.m3u8").write_bytes(hls_playlist(f"file://{target}"))
        playlist = hls_playlist(f"file://{target}")
        clip = make_clip(folder / "whole.mp4", seconds=2.0)  # no +faststart: index at the end
        files = {
            "playlist.m3u8": playlist,
            "playlist.mp4": playlist,
            "master.m3u8": hls_master_playlist(f"file://{folder / 'child.m3u8'}"),
            "subfile.m3u8": subfile_playlist(target),
            "subfile.mp4": subfile_playlist(target),
            "list.ffconcat": concat_script(target),
            "concat.mp4": concat_script(target),
            "poc.avi": avi_with_playlist(xbin_playlist(target)),
            "bomb.y4m": make_y4m_bomb(folder / "bomb.y4m").read_bytes(),
            "bomb.avi": raw_avi(30000, 30000),
            "big.avi": raw_avi(10000, 10000),
            "empty.mp4": b"",
            "random.mp4": make_random_bytes(folder / "random.mp4").read_bytes(),
            "truncated.mp4": make_truncated(clip, folder / "truncated.mp4").read_bytes(),
        }
        yield Corpus(folder, tripwire, files)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server for the module."""
    with module_server(tmp_path_factory.mktemp("server")) as live:
        yield live


def _tree(folder: Path, skip: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if skip not in (p, *p.parents)}


@pytest.fixture(autouse=True)
def nothing_written_outside_data(server: LiveServer, corpus: Corpus) -> Iterator[None]:
    """No test leaves a file outside the data directory, or a stored name a client chose."""
    data = server.settings.data_dir
    watched = [data.parent, corpus.folder]
    before = {folder: _tree(folder, data) for folder in watched}
    yield
    for folder in watched:
        assert _tree(folder, data) == before[folder], f"files appeared in {folder}"
    files = data / "files"
    stored = [p.relative_to(files).as_posix() for p in stored_blobs(files)]
    assert all(STORED_NAME.fullmatch(name) for name in stored), stored
    assert not corpus.tripwire.opened.is_set(), "something opened the secret file"
    with httpx.Client(base_url=server.url) as plain:
        assert plain.get("/healthz").status_code == 200


def upload(
    client: httpx.Client, name: str, data: bytes, form: str, **fields: str
) -> httpx.Response:
    """POST /convert as multipart (the name as the part's filename) or raw (`filename=`)."""
    if form == "multipart":
        return client.post(
            "/convert", files={"file": (name, data, "application/octet-stream")}, data=fields
        )
    return client.post(
        "/convert",
        params={"filename": name, **fields},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def refused_or_failed(client: httpx.Client, response: httpx.Response) -> str:
    """The reason given: a 422 unsupported_media, or the error of a job that failed."""
    assert response.status_code < 500, response.text
    if response.status_code != 202:
        return str(assert_problem(response, 422, "unsupported_media")["detail"])
    job = wait_done(client, response.json()["id"])
    assert job["status"] == "failed" and job["result"] is None, job
    assert job["error"]["code"] in ("unsupported_media", "transcode_failed"), job
    assert client.get(f"/job/{job['id']}/output").status_code == 404
    return str(job["error"]["message"])


def download(client: httpx.Client, job: dict[str, Any]) -> httpx.Response:
    response = client.get(f"/job/{job['id']}/output")
    assert response.status_code == 200, response.text
    return response


_PARAM = re.compile(r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[^";\s]+)\s*')


def disposition(header: str) -> tuple[str, dict[str, str]]:
    """Parse a Content-Disposition header strictly (RFC 6266): its type and parameters."""
    kind, _, rest = header.partition(";")
    rest = ";" + rest if rest else ""
    assert _PARAM.sub("", rest) == "", f"malformed parameters in {header!r}"
    params: dict[str, str] = {}
    for name, value in _PARAM.findall(rest):
        assert name.lower() not in params, f"{name} given twice in {header!r}"
        quoted = value.startswith('"')
        params[name.lower()] = re.sub(r"\\(.)", r"\1", value[1:-1]) if quoted else value
    return kind.strip(), params


def download_name(header: str) -> str:
    """The name a browser saves the download as: `filename*` if present, else `filename`."""
    assert "\r" not in header and "\n" not in header
    kind, params = disposition(header)
    assert kind == "attachment"
    assert params["filename"].isascii()
    if "filename*" in params:
        charset, language, encoded = params["filename*"].split("'", 2)
        assert charset == "UTF-8" and language == ""
        name = unquote(encoded, encoding="utf-8", errors="strict")
    else:
        name = params["filename"]
    assert "/" not in name and "\\" not in name and name not in ("", ".", "..")
    return name


# -- the hostile corpus -----------------------------------------------------------------------


def test_the_tripwire_catches_an_unguarded_ffmpeg(tmp_path: Path) -> None:
    """The corpus has teeth: ffmpeg without our limits follows the playlist to the secret."""
    with Tripwire(tmp_path / "secret.ts", secret_text()) as tripwire:
        playlist = tmp_path / "playlist.m3u8"
        playlist.write_bytes(hls_playlist(f"file://{tripwire.path}"))
        subprocess.run(
            [FFMPEG, "-nostdin", "-v", "quiet", "-i", str(playlist), "-t", "1", "-f", "null", "-"],
            timeout=30,
            check=False,
        )
        assert tripwire.opened.is_set()


@pytest.mark.parametrize("form", ["multipart", "raw"])
@pytest.mark.parametrize(
    "name",
    [
        "playlist.m3u8",
        "playlist.mp4",
        "master.m3u8",
        "subfile.m3u8",
        "subfile.mp4",
        "list.ffconcat",
        "concat.mp4",
        "poc.avi",
        "bomb.y4m",
        "bomb.avi",
        "random.mp4",
        "truncated.mp4",
    ],
)
def test_hostile_upload_is_refused(
    server: LiveServer, corpus: Corpus, name: str, form: str
) -> None:
    with server.client() as client:
        reason = refused_or_failed(client, upload(client, name, corpus.files[name], form))
    assert re.search(r"not a video or audio file|no video or audio stream|could not be", reason)
    for private in (str(corpus.folder), str(server.settings.data_dir), corpus.tripwire.secret):
        assert private not in reason


def test_a_picture_too_large_is_refused_with_the_limit(server: LiveServer, corpus: Corpus) -> None:
    with server.client() as client:
        response = upload(client, "big.avi", corpus.files["big.avi"], "raw")
    detail = assert_problem(response, 422, "unsupported_media")["detail"]
    assert "10000x10000" in detail and "8192x8192" in detail


@pytest.mark.parametrize("form", ["multipart", "raw"])
def test_an_empty_upload_is_a_bad_request(server: LiveServer, corpus: Corpus, form: str) -> None:
    with server.client() as client:
        assert_problem(upload(client, "empty.mp4", b"", form), 400, "bad_request")


def test_a_playlist_riding_in_a_real_avi_is_never_followed(
    server: LiveServer, corpus: Corpus
) -> None:
    """The PoC's GAB2 playlist beside a real video stream: only the video is converted."""
    avi = avi_with_playlist(xbin_playlist(corpus.tripwire.path), video_frames=25, size=(32, 16))
    with server.client() as client:
        response = upload(client, "poc-with-video.avi", avi, "multipart")
        assert response.status_code == 202, response.text
        assert response.json()["input"]["container"] == "avi"
        job = wait_done(client, response.json()["id"])
        assert job["status"] == "completed", job
        # What an XBIN stream would have drawn is 32 characters wide in 8-pixel cells.
        assert job["result"]["video"]["width"] == 32 and job["result"]["video"]["height"] == 16
        assert job["result"]["duration_seconds"] == pytest.approx(1.0, abs=0.1)
        assert corpus.tripwire.secret.encode() not in download(client, job).content


def test_an_mp4_with_a_zip_appended_converts_as_the_video(
    server: LiveServer, corpus: Corpus, clip: Path
) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zipped:
        zipped.writestr("secret.txt", corpus.tripwire.secret)
    polyglot = clip.read_bytes() + archive.getvalue()
    with server.client() as client:
        response = upload(client, "polyglot.mp4", polyglot, "raw")
        assert response.status_code == 202, response.text
        job = wait_done(client, response.json()["id"])
        assert job["status"] == "completed", job
        assert job["input"]["container"] == "mp4" and job["result"]["video"]["width"] == 160
        assert corpus.tripwire.secret.encode() not in download(client, job).content


# -- options are strict ------------------------------------------------------------------------

_LONG_URL = "https://93.184.216.34/" + "a" * 2027  # 2049 characters; no lookup needed


@pytest.mark.parametrize("form", ["multipart", "raw"])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vf", "movie=/etc/passwd"),  # ffmpeg's own option names are not options here
        ("filter_complex", "amovie=/etc/passwd"),
        ("-i", "/etc/passwd"),
        ("format", "image2"),  # an ffmpeg muxer name, not a format here (hls is one now)
        ("preset", "../../etc/passwd"),
        ("video_bitrate", "1M -i /etc/passwd"),
        ("width", "100;id"),
        ("fps", "nan"),
        ("start", "inf"),
        ("webhook_url", _LONG_URL),
        ("webhook_url", "file:///etc/passwd"),
        ("metadata", '{"k": "' + "x" * 4088 + '"}'),  # 4097 bytes: 4 KiB + 1
        ("metadata", '"not an object"'),
    ],
)
def test_hostile_options_are_refused_before_anything_runs(
    server: LiveServer, clip: Path, form: str, field: str, value: str
) -> None:
    with server.client() as client:
        response = upload(client, "clip.mp4", clip.read_bytes(), form, **{field: value})
    problem = assert_problem(response, 422, "invalid_option")
    assert [error["field"] for error in problem["errors"]] == [field]


def test_metadata_of_exactly_4_kib_is_kept_unchanged(server: LiveServer, clip: Path) -> None:
    value = "é" * 2043 + "x"  # counted in bytes (UTF-8), not characters
    metadata = '{"k": "' + value + '"}'
    assert len(metadata.encode()) == 4096
    with server.client() as client:
        response = upload(client, "clip.mp4", clip.read_bytes(), "multipart", metadata=metadata)
        assert response.status_code == 202, response.text
        assert response.json()["metadata"] == {"k": value}
        assert wait_done(client, response.json()["id"])["status"] == "completed"


def test_an_idempotency_key_over_255_characters_is_refused(server: LiveServer, clip: Path) -> None:
    with server.client() as client:
        response = client.post(
            "/convert",
            content=clip.read_bytes(),
            headers={"Content-Type": "video/mp4", "Idempotency-Key": "k" * 256},
        )
    assert_problem(response, 422, "invalid_option")


# -- filenames are data -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "sent", "kept"),
    [
        ("multipart", "../../etc/evil.mp4", "evil.mp4"),
        ("raw", "../../etc/evil.mp4", "evil.mp4"),
        ("raw", "..\\..\\windows\\evil.mp4", "evil.mp4"),
        ("raw", "/etc/passwd", "passwd"),
        ("raw", "..", "upload"),
        ("raw", "a\r\nSet-Cookie: pwned=1\r\n.mp4", "aSet-Cookie: pwned=1.mp4"),
        ("raw", "a\"; filename*=UTF-8''evil.exe.mp4", "a\"; filename*=UTF-8''evil.exe.mp4"),
        ("multipart", "vidéo 日本.mp4", "vidéo 日本.mp4"),
        ("raw", "vidéo 日本.mp4", "vidéo 日本.mp4"),
    ],
)
def test_filenames_are_never_paths_nor_headers(
    server: LiveServer, clip: Path, form: str, sent: str, kept: str
) -> None:
    with server.client() as client:
        response = upload(client, sent, clip.read_bytes(), form)
        assert response.status_code == 202, response.text
        assert response.json()["input"]["filename"] == kept
        job = wait_done(client, response.json()["id"])
        assert job["status"] == "completed", job
        stem = kept.rsplit(".", 1)[0] if "." in kept[1:] else kept
        assert job["result"]["filename"] == f"{stem}.mp4"
        got = download(client, job)
        head = client.head(f"/job/{job['id']}/output")
    assert "set-cookie" not in got.headers
    header = got.headers["content-disposition"]
    assert head.headers["content-disposition"] == header
    # The saved name is the kept one, bar the characters a quoted-string cannot carry.
    assert download_name(header) == f"{stem}.mp4".replace('"', "")
    assert kept.isascii() or "filename*=UTF-8''" in header
    assert not Path("/etc/evil.mp4").exists()


# -- the worker's ffmpeg command, each lock on its own -----------------------------------------


def _worker_argv(source: Path, output: Path, demuxer: str) -> list[str]:
    """The argv the worker runs, for an input the probe judged to be `demuxer`."""
    info = MediaInfo(demuxer, demuxer, 1.0, VideoInfo("rawvideo", 32, 16, 25.0, None, 0), None)
    settings = Settings(data_dir=output.parent)
    return build_command(FFMPEG, source, output, resolve_options({}), info, settings)


def test_the_worker_command_forces_the_demuxer_and_whitelists(
    corpus: Corpus, tmp_path: Path
) -> None:
    source = tmp_path / "input"
    source.write_bytes(avi_with_playlist(xbin_playlist(corpus.tripwire.path), video_frames=25))
    argv = _worker_argv(source, tmp_path / "out.mp4", "avi")
    before_input = argv[: argv.index("-i")]
    assert before_input[before_input.index("-f") + 1] == "avi"
    assert before_input[before_input.index("-protocol_whitelist") + 1] == "file"
    allowed = set(before_input[before_input.index("-format_whitelist") + 1].split(","))
    assert not allowed & {"hls", "concat", "image2", "lavfi", "tty", "srt", "ass", "yuv4mpegpipe"}
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert corpus.tripwire.secret.encode() not in (tmp_path / "out.mp4").read_bytes()


@pytest.mark.parametrize("name", ["playlist.m3u8", "master.m3u8", "list.ffconcat"])
def test_the_format_whitelist_holds_without_the_forced_demuxer(
    corpus: Corpus, tmp_path: Path, name: str
) -> None:
    """Were the probe fooled, ffmpeg's own whitelist would still refuse a playlist or script."""
    source = tmp_path / name  # named so that ffmpeg recognises it
    source.write_bytes(corpus.files[name])
    argv = _worker_argv(source, tmp_path / "out.mp4", "mpegts")
    forced = argv.index("-f")
    del argv[forced : forced + 2]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "not on whitelist" in done.stderr
    assert not (tmp_path / "out.mp4").exists()

"""Streaming packages and stills, end to end: a real server, real ffmpeg, the files checked."""

from __future__ import annotations

import io
import itertools
import re
import signal
import subprocess
import xml.etree.ElementTree as ElementTree
import zipfile
from pathlib import Path

import av
import httpx
import imageio_ffmpeg
import m3u8
import pytest

from .conftest import LiveServer, free_port
from .helpers import api_client, assert_problem, post_convert, submit_job, wait_done, wait_for
from .media_clips import make_clip
from .processes import VidqProcess


@pytest.fixture(scope="module")
def clip4s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of 320x180 at 25 fps with stereo sound: two 2-second segments a rendition."""
    return make_clip(
        tmp_path_factory.mktemp("pkg") / "four.mp4", seconds=4, size=(320, 180), channels=2
    )


@pytest.fixture(scope="module")
def ladder_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of 854x480 at 25 fps, black for its first 1.5 s, with stereo sound: the default
    ladder gives it two renditions (480, 360) of three 2-second segments each."""
    path = tmp_path_factory.mktemp("ladder") / "ladder.mp4"
    graph = (
        "color=c=black:s=854x480:r=25:d=1.5,format=yuv420p[dark];"
        "testsrc2=s=854x480:r=25:d=4.5,format=yuv420p[pattern];"
        "[dark][pattern]concat=n=2:v=1:a=0[v];"
        "sine=frequency=440:sample_rate=48000:duration=6,aformat=channel_layouts=stereo[a]"
    )
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-y",
            "-filter_complex",
            graph,
            "-map",
            "[v]",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-c:a",
            "aac",
            str(path),
        ],
        check=True,
    )
    return path


def _files(storage_root: Path, job_id: str) -> dict[str, Path]:
    folder = storage_root / "outputs" / job_id
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}


def _segment_frames(init: Path, segment: Path) -> list[tuple[float, bool]]:
    """(time, key frame?) of each video frame of one fMP4 segment, decoded with its init."""
    data = init.read_bytes() + segment.read_bytes()
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        return [
            (float(frame.time or 0.0), bool(frame.key_frame)) for frame in container.decode(stream)
        ]


def test_cmaf_package_with_stills(live_server: LiveServer, clip4s: Path) -> None:
    with live_server.client() as client:
        job = submit_job(
            client,
            clip4s,
            preset="cmaf",
            renditions="180,120",
            segment_seconds="2",
            poster="true",
            storyboard="true",
        )
        done = wait_done(client, job["id"])
        assert done["status"] == "completed", done["error"]
        result = done["result"]
        roles = {f["path"]: f["role"] for f in result["files"]}
        assert roles["master.m3u8"] == roles["manifest.mpd"] == "manifest"
        assert roles["180p.m3u8"] == roles["120p.m3u8"] == roles["audio.m3u8"] == "playlist"
        assert roles["180p/init.mp4"] == "init" and roles["180p/seg_00002.m4s"] == "segment"
        assert roles["poster.jpg"] == "poster" and roles["storyboard.jpg"] == "storyboard"
        assert roles["storyboard.vtt"] == "storyboard_vtt"
        assert "180p/seg_00003.m4s" not in roles, "4 s in 2-second segments"
        assert set(result["manifests"]) == {"hls", "dash"}
        assert result["video"]["width"] == 320 and result["video"]["height"] == 180
        assert result["content_type"] == "application/zip"

        stored = _files(live_server.settings.data_dir / "files", job["id"])
        assert set(stored) == set(roles), "every file listed is stored, and only those"
        for f in result["files"]:
            assert stored[f["path"]].stat().st_size == f["size_bytes"]

        master = stored["master.m3u8"].read_text()
        assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"' in master
        inf = re.findall(r"#EXT-X-STREAM-INF:(.*)\n(.*)", master)
        assert [uri for _, uri in inf] == ["180p.m3u8", "120p.m3u8"]
        for attributes, uri in inf:
            assert re.search(r'CODECS="avc1\.64[0-9a-f]{4},mp4a\.40\.2"', attributes), attributes
            assert "FRAME-RATE=25.000" in attributes and 'AUDIO="audio"' in attributes
            peak = int(re.search(r"(?<!-)BANDWIDTH=(\d+)", attributes)[1])  # type: ignore[index]
            average = int(re.search(r"AVERAGE-BANDWIDTH=(\d+)", attributes)[1])  # type: ignore[index]
            name = uri.removesuffix(".m3u8")
            seconds = 4.0
            video_bits = (
                sum(p.stat().st_size for k, p in stored.items() if k.startswith(f"{name}/seg_")) * 8
            )
            audio_bits = (
                sum(p.stat().st_size for k, p in stored.items() if k.startswith("audio/seg_")) * 8
            )
            assert average == pytest.approx((video_bits + audio_bits) / seconds, rel=0.02)
            assert peak >= average
        assert "RESOLUTION=320x180" in master and "RESOLUTION=214x120" in master

        mpd = stored["manifest.mpd"].read_text()
        assert 'media="180p/seg_$Number%05d$.m4s"' in mpd and "r$RepresentationID$" not in mpd
        assert 'media="audio/seg_$Number%05d$.m4s"' in mpd

        # Segments align across renditions: each starts with a key frame at the same time.
        starts = {}
        for name in ("180p", "120p"):
            for n in (1, 2):
                frames = _segment_frames(
                    stored[f"{name}/init.mp4"], stored[f"{name}/seg_0000{n}.m4s"]
                )
                assert frames[0][1], f"{name} segment {n} starts with a key frame"
                starts.setdefault(n, set()).add(round(frames[0][0], 3))
        assert all(len(times) == 1 for times in starts.values()), starts

        vtt = stored["storyboard.vtt"].read_text()
        assert vtt.startswith("WEBVTT") and "storyboard.jpg#xywh=0,0,160,90" in vtt
        assert vtt.count("-->") == 4, "one tile a second for 4 s (duration/100 < 1 s)"
        with av.open(str(stored["storyboard.jpg"])) as sprite:
            assert (sprite.streams.video[0].width, sprite.streams.video[0].height) == (640, 90)
        with av.open(str(stored["poster.jpg"])) as poster:
            assert poster.streams.video[0].width == 320

        # download_url: one uncompressed ZIP of the whole package.
        download = httpx.get(result["download_url"])
        assert download.status_code == 200
        with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
            assert sorted(archive.namelist()) == sorted(roles)
            assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
            assert archive.read("180p/seg_00001.m4s") == stored["180p/seg_00001.m4s"].read_bytes()

        assert client.delete(f"/job/{job['id']}").status_code == 204
        files_root = live_server.settings.data_dir / "files"
        assert not [p for p in files_root.rglob("*") if p.is_file() and job["id"] in str(p)]


@pytest.mark.parametrize("fmt", ["hls", "dash"])
def test_hls_or_dash_keeps_only_its_manifest(
    live_server: LiveServer, clip4s: Path, fmt: str
) -> None:
    with live_server.client() as client:
        job = submit_job(client, clip4s, format=fmt, renditions="120", segment_seconds="2")
        done = wait_done(client, job["id"])
        assert done["status"] == "completed", done["error"]
        paths = {f["path"] for f in done["result"]["files"]}
        if fmt == "hls":
            assert "master.m3u8" in paths and "manifest.mpd" not in paths
            assert set(done["result"]["manifests"]) == {"hls"}
        else:
            assert "manifest.mpd" in paths and not any(p.endswith(".m3u8") for p in paths)
            assert set(done["result"]["manifests"]) == {"dash"}


def test_portrait_and_audio_only_and_video_only_packages(
    live_server: LiveServer, tmp_path: Path
) -> None:
    portrait = make_clip(tmp_path / "portrait.mp4", seconds=2, size=(180, 320))
    silent = make_clip(tmp_path / "silent.mp4", seconds=2, size=(320, 180), audio=False)
    sound = make_clip(tmp_path / "sound.m4a", seconds=2, video=False)
    with live_server.client() as client:
        jobs = {
            "portrait": submit_job(client, portrait, preset="hls", renditions="120"),
            "silent": submit_job(client, silent, preset="hls"),
            "sound": submit_job(client, sound, preset="hls"),
        }
        done = {name: wait_done(client, job["id"]) for name, job in jobs.items()}
    root = live_server.settings.data_dir / "files" / "outputs"
    # Portrait: the short side is the width (120x214, not 68x120).
    assert done["portrait"]["result"]["video"]["width"] == 120
    assert "RESOLUTION=120x214" in (root / jobs["portrait"]["id"] / "master.m3u8").read_text()
    # Below the ladder's smallest size: one rendition of the input's own size, no audio group.
    silent_master = (root / jobs["silent"]["id"] / "master.m3u8").read_text()
    assert "RESOLUTION=320x180" in silent_master and "EXT-X-MEDIA" not in silent_master
    assert 'CODECS="avc1.' in silent_master and "mp4a" not in silent_master
    sound_master = (root / jobs["sound"]["id"] / "master.m3u8").read_text()
    assert "RESOLUTION" not in sound_master and 'CODECS="mp4a.40.2"' in sound_master
    assert done["sound"]["result"]["video"] is None


def test_the_poster_preset_makes_only_a_still(live_server: LiveServer, clip: Path) -> None:
    with live_server.client() as client:
        done = wait_done(client, submit_job(client, clip, preset="poster", width="80")["id"])
        assert done["status"] == "completed", done["error"]
        result = done["result"]
        assert result["content_type"] == "image/jpeg" and result["filename"].endswith(".jpg")
        assert [f["role"] for f in result["files"]] == ["main"]
        image = httpx.get(result["download_url"])
        assert image.headers["content-type"] == "image/jpeg"
        with av.open(io.BytesIO(image.content)) as still:
            assert (still.streams.video[0].width, still.streams.video[0].height) == (80, 46)


def test_package_options_are_checked_against_the_input(
    live_server: LiveServer, tmp_path: Path
) -> None:
    sound = make_clip(tmp_path / "sound.m4a", video=False)
    with live_server.client() as client:
        body = assert_problem(
            post_convert(client, sound, poster="true", format="mp4"), 422, "invalid_option"
        )
        # mp4 makes a video, and so does a poster: neither from sound alone.
        assert [e["field"] for e in body["errors"]] == ["format", "poster"]
        body = assert_problem(post_convert(client, sound, preset="poster"), 422, "invalid_option")
        assert [e["field"] for e in body["errors"]] == ["format"]


def _mean_luma(path: Path) -> float:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        plane = bytes(frame.planes[0])
    return sum(plane) / len(plane)


def test_a_ladder_package_is_well_formed(live_server: LiveServer, ladder_clip: Path) -> None:
    """The structure players rely on, checked with their parsers: the m3u8 package and XML."""
    with live_server.client() as client:
        job = submit_job(
            client, ladder_clip, preset="cmaf", segment_seconds="2", poster="true", storyboard="1"
        )
        done = wait_done(client, job["id"], timeout=120)
        assert done["status"] == "completed", done["error"]
    stored = _files(live_server.settings.data_dir / "files", job["id"])
    frame = 1 / 25

    master = m3u8.loads(stored["master.m3u8"].read_text())
    assert master.is_variant
    variants = {p.uri: p for p in master.playlists}
    assert list(variants) == ["480p.m3u8", "360p.m3u8"], "the default ladder below 480 lines"
    assert [m.uri for m in master.media] == ["audio.m3u8"]
    audio = m3u8.loads(stored["audio.m3u8"].read_text())
    audio_bits = [stored[s.uri].stat().st_size * 8 for s in audio.segments]
    for uri, variant in variants.items():
        info = variant.stream_info
        assert info.codecs.startswith("avc1.64") and info.codecs.endswith(",mp4a.40.2")
        assert info.frame_rate == pytest.approx(25.0)
        playlist = m3u8.loads(stored[uri].read_text())
        durations = [s.duration for s in playlist.segments]
        assert len(durations) >= 3 and sum(durations) == pytest.approx(6.0, abs=2 * frame)
        assert all(abs(d - 2.0) <= frame for d in durations[:-1]), durations
        peaks = [
            (stored[s.uri].stat().st_size * 8 + audio_bits[n]) / s.duration
            for n, s in enumerate(playlist.segments)
        ]
        assert info.bandwidth >= max(peaks) * 0.999
        assert info.average_bandwidth <= info.bandwidth
        assert playlist.segment_map[0].uri == f"{uri.removesuffix('.m3u8')}/init.mp4"
    assert variants["480p.m3u8"].stream_info.resolution == (854, 480)
    assert variants["360p.m3u8"].stream_info.resolution == (640, 360)

    # Segments decode, and each starts on a key frame at the same time in every rendition.
    starts: dict[int, set[float]] = {}
    for name in ("480p", "360p"):
        for n in (1, 2, 3):
            frames = _segment_frames(stored[f"{name}/init.mp4"], stored[f"{name}/seg_0000{n}.m4s"])
            assert frames and frames[0][1], f"{name} segment {n} starts with a key frame"
            starts.setdefault(n, set()).add(round(frames[0][0], 3))
    assert [len(times) for times in starts.values()] == [1, 1, 1], starts

    mpd = ElementTree.fromstring(stored["manifest.mpd"].read_bytes())
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    video = mpd.findall(".//d:AdaptationSet[@contentType='video']/d:Representation", ns)
    assert [(r.get("width"), r.get("height")) for r in video] == [("854", "480"), ("640", "360")]
    assert len(mpd.findall(".//d:AdaptationSet[@contentType='audio']/d:Representation", ns)) == 1

    # The poster: 854x480, and not the black frames the clip starts with.
    with av.open(str(stored["poster.jpg"])) as poster:
        assert (poster.streams.video[0].width, poster.streams.video[0].height) == (854, 480)
    assert _mean_luma(stored["poster.jpg"]) > 40

    # The storyboard: cues cover the whole span, back to back, each tile inside the sprite.
    with av.open(str(stored["storyboard.jpg"])) as sprite:
        sprite_w, sprite_h = sprite.streams.video[0].width, sprite.streams.video[0].height
    cues = re.findall(
        r"(\d+):(\d+):([\d.]+) --> (\d+):(\d+):([\d.]+)\nstoryboard\.jpg#xywh=(\d+),(\d+),(\d+),(\d+)",
        stored["storyboard.vtt"].read_text(),
    )
    times = [
        (int(a) * 3600 + int(b) * 60 + float(c), int(d) * 3600 + int(e) * 60 + float(f))
        for a, b, c, d, e, f, *_ in cues
    ]
    assert times[0][0] == 0 and times[-1][1] == pytest.approx(6.0, abs=2 * frame)
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(times))
    for *_, x, y, w, h in cues:
        assert int(x) + int(w) <= sprite_w and int(y) + int(h) <= sprite_h


def test_kill_9_mid_package_leaves_no_file_behind(tmp_path: Path, ladder_clip: Path) -> None:
    """A real `vidq serve` killed while it encodes a ladder: after the restart the job is made
    again and completes; deleting it then leaves nothing of it in storage."""
    env = {
        "VIDQ_WORKERS": "1",
        "VIDQ_HEARTBEAT_SECONDS": "0.2",
        "VIDQ_POLL_SECONDS": "0.2",
        "VIDQ_LEASE_SECONDS": "5",
        "VIDQ_LOG_LEVEL": "warning",
    }
    serve = VidqProcess("serve", tmp_path / "data", env, port=free_port())
    try:
        serve.start()
        key = (serve.data_dir / "api-key").read_text().strip()
        with api_client(serve.url, key) as client:
            job = submit_job(client, ladder_clip, preset="cmaf", segment_seconds="2", poster="1")
            wait_for(lambda: bool(serve.ffmpeg_pids()), 30, "the ladder's ffmpeg to start")
            serve.signal(signal.SIGKILL)
            serve.wait_exit(10)
            serve.start()
            done = wait_done(client, job["id"], timeout=120)
            assert done["status"] == "completed", done["error"]
            files = serve.data_dir / "files"
            mine = [p for p in files.rglob("*") if p.is_file() and job["id"] in str(p)]
            assert len(mine) == len(done["result"]["files"]) + 1, "every file, and the ZIP"
            assert client.delete(f"/job/{job['id']}").status_code == 204
        assert not [p for p in files.rglob("*") if p.is_file() and job["id"] in str(p)]
        assert not list((serve.data_dir / "tmp").iterdir()), "no scratch space is left"
    finally:
        serve.stop()

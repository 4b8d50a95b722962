"""Overlays end to end: a watermark and subtitles (burned in or as a soft track) on tiny
clips through a real server and real ffmpeg, the pixels and streams of the output measured;
and the overlay parts' hostile-input rules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from vidq.errors import InvalidOption, UnsupportedMedia
from vidq.jobs.blobs import PART_ROLES, BlobOwner, owner_of, part_key
from vidq.jobs.options import resolve_options
from vidq.jobs.overlays import attachment_fields
from vidq.media.command import build_command
from vidq.media.overlay_filters import OverlayFiles
from vidq.media.probe import probe
from vidq.media.subtitle_files import FONT_FAMILY, clean_subtitles, job_subtitles
from vidq.media.watermark_image import check_watermark

from .conftest import LiveServer, make_settings, module_server, running_server
from .helpers import assert_problem, run_to_end, stored_blobs, wait_completed, wait_done
from .media_clips import FFMPEG, ffmpeg

WIDTH, HEIGHT = 320, 180
TUS = {"Tus-Resumable": "1.0.0"}
SRT = "1\n00:00:01,000 --> 00:00:01,600\nHELLO WORLD\n\n"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat grey 2.5 s clip, a red 40x40 PNG and a JPEG, in one folder."""
    folder = tmp_path_factory.mktemp("overlays")
    ffmpeg(
        "-f", "lavfi", "-i", f"color=c=gray:s={WIDTH}x{HEIGHT}:r=25:d=2.5",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", str(folder / "grey.mp4"),
    )  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=40x40", "-frames:v", "1", str(folder / "red.png"))
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=40x40", "-frames:v", "1", str(folder / "red.jpg"))
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("srv")
    with module_server(folder, max_overlay_bytes=4096, rate_limit_per_second=0) as live:
        yield live


def convert(
    client: httpx.Client, video: Path, parts: dict[str, tuple[str, bytes]], **fields: str
) -> httpx.Response:
    files: dict[str, Any] = {"file": (video.name, video.read_bytes(), "video/mp4")}
    files.update({role: (name, data) for role, (name, data) in parts.items()})
    return client.post("/convert", files=files, data=fields)


def finished(client: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    return wait_completed(client, response.json()["id"])


def download(client: httpx.Client, job: dict[str, Any], folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(client.get(f"/job/{job['id']}/output").content)
    return path


def luma_frames(path: Path) -> list[tuple[float, bytes, int]]:
    """Each frame's time, its luma plane as bytes and the plane's line size."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            plane = frame.reformat(format="gray").planes[0]
            frames.append((float(frame.time or 0.0), bytes(plane), plane.line_size))
    return frames


def rgb_at(path: Path, x: int, y: int, index: int = 10) -> tuple[int, int, int]:
    """The colour of one pixel of the `index`th frame."""
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n == index:
                rgb = frame.reformat(format="rgb24").planes[0]
                offset = y * rgb.line_size + 3 * x
                data = bytes(rgb)
                return data[offset], data[offset + 1], data[offset + 2]
    raise AssertionError("too few frames")


def region_difference(a: bytes, b: bytes, stride: int, box: tuple[int, int, int, int]) -> float:
    """Mean absolute difference of two luma planes inside (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    total = sum(
        abs(a[y * stride + x] - b[y * stride + x]) for y in range(y0, y1) for x in range(x0, x1)
    )
    return total / ((x1 - x0) * (y1 - y0))


# -- watermark ----------------------------------------------------------------------------


def test_watermark_lands_where_asked(client: httpx.Client, media: Path, tmp_path: Path) -> None:
    png = ("red.png", (media / "red.png").read_bytes())
    corner = finished(client, convert(client, media / "grey.mp4", {"watermark": png}))
    assert corner["options"]["watermark"] is True
    assert corner["options"]["watermark_position"] == "bottom-right"
    assert corner["options"]["watermark_scale"] == 0.15
    top_left = finished(
        client,
        convert(
            client,
            media / "grey.mp4",
            {"watermark": ("red.jpg", (media / "red.jpg").read_bytes())},
            watermark_position="top-left",
            watermark_scale="0.25",
            watermark_margin="0.05",
            watermark_opacity="0.5",
        ),
    )
    plain = finished(client, convert(client, media / "grey.mp4", {}))
    corner_file = download(client, corner, tmp_path, "corner.mp4")
    top_left_file = download(client, top_left, tmp_path, "top_left.mp4")
    plain_file = download(client, plain, tmp_path, "plain.mp4")

    # bottom-right: 48 px wide (0.15 x 320), 6 px margin (0.02 x 320), red over grey.
    red, green, blue = rgb_at(corner_file, WIDTH - 6 - 24, HEIGHT - 6 - 24)
    assert red > 200 and green < 60 and blue < 60
    grey = rgb_at(plain_file, WIDTH - 30, HEIGHT - 30)
    assert abs(grey[0] - grey[1]) < 10  # the plain encode is grey there
    assert rgb_at(corner_file, 30, 30) == pytest.approx(rgb_at(plain_file, 30, 30), abs=6)
    # top-left: 80 px wide, 16 px margin, half transparent: between red and grey.
    red, green, blue = rgb_at(top_left_file, 16 + 40, 16 + 40)
    assert 150 < red < 235 and 40 < green < 110, (red, green, blue)
    assert rgb_at(top_left_file, 8, 8) == pytest.approx(rgb_at(plain_file, 8, 8), abs=6)
    assert rgb_at(top_left_file, WIDTH - 30, HEIGHT - 30) == pytest.approx(grey, abs=6)


# -- subtitles ----------------------------------------------------------------------------


def test_burned_subtitles_show_in_their_span_only(
    client: httpx.Client, media: Path, tmp_path: Path
) -> None:
    # The cue is at 1.0-1.6 s of the input; from start=0.5 it is at 0.5-1.1 s of the output.
    srt = ("talk.srt", SRT.encode())
    burned = finished(client, convert(client, media / "grey.mp4", {"subtitles": srt}, start="0.5"))
    assert burned["options"]["subtitles_mode"] == "burn"
    plain = finished(client, convert(client, media / "grey.mp4", {}, start="0.5"))
    with_text = luma_frames(download(client, burned, tmp_path, "burned.mp4"))
    without = luma_frames(download(client, plain, tmp_path, "plain.mp4"))
    assert len(with_text) == len(without) > 40
    lower_third = (0, HEIGHT * 2 // 3, WIDTH, HEIGHT)
    inside = outside = 0
    for (seconds, a, stride), (_, b, _) in zip(with_text, without, strict=True):
        difference = region_difference(a, b, stride, lower_third)
        if 0.6 <= seconds <= 1.0:
            assert difference > 3.0, f"no text at {seconds:.2f} s"
            inside += 1
        elif seconds < 0.4 or seconds > 1.25:
            assert difference < 1.0, f"text at {seconds:.2f} s"
            outside += 1
    assert inside >= 8 and outside >= 20


def test_soft_track_in_mp4(client: httpx.Client, media: Path, tmp_path: Path) -> None:
    vtt = ("talk.vtt", b"WEBVTT\n\n00:00.500 --> 00:01.500\nHello there\n")
    job = finished(
        client, convert(client, media / "grey.mp4", {"subtitles": vtt}, subtitles_mode="track")
    )
    path = download(client, job, tmp_path, "track.mp4")
    with av.open(str(path)) as container:
        (track,) = container.streams.subtitles
        assert track.codec_context.name == "mov_text"
        texts = [bytes(p) for p in container.demux(track) if p.size]
    assert any(b"Hello there" in text for text in texts)
    # Not burned: the picture is the plain grey.
    plain = finished(client, convert(client, media / "grey.mp4", {}))
    plain_path = download(client, plain, tmp_path, "plain.mp4")
    (_, a, stride), (_, b, _) = luma_frames(path)[25], luma_frames(plain_path)[25]
    assert region_difference(a, b, stride, (0, 0, WIDTH, HEIGHT)) < 1.0


def test_soft_track_in_hls(client: httpx.Client, media: Path) -> None:
    ass = (
        "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour,"
        " BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle,"
        " BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
        "Style: Default,Comic Sans,30,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,"
        "100,100,0,0,1,2,2,2,10,10,10,1\n\n[Events]\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,{\\fnWingdings}Packaged words\n"
    )
    job = finished(
        client,
        convert(
            client,
            media / "grey.mp4",
            {"subtitles": ("talk.ass", ass.encode())},
            format="hls",
            subtitles_mode="track",
        ),
    )
    roles = {f["path"]: f["role"] for f in job["result"]["files"]}
    assert roles["subtitles.vtt"] == "subtitles" and roles["subtitles.m3u8"] == "playlist"
    master = client.get(f"/job/{job['id']}/files/master.m3u8").text
    assert '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs"' in master
    assert 'URI="subtitles.m3u8"' in master
    variants = [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF")]
    assert variants and all('SUBTITLES="subs"' in line for line in variants)
    playlist = client.get(f"/job/{job['id']}/files/subtitles.m3u8").text
    assert "subtitles.vtt" in playlist and "#EXT-X-ENDLIST" in playlist
    vtt = client.get(f"/job/{job['id']}/files/subtitles.vtt").text
    lines = vtt.splitlines()
    assert lines[0] == "WEBVTT" and lines[1].startswith("X-TIMESTAMP-MAP=MPEGTS:0,")
    assert "00:00:01.000 --> 00:00:02.000" in vtt and "Packaged words" in vtt


# -- parts by resumable upload ------------------------------------------------------------


def test_watermark_from_a_resumable_upload(
    client: httpx.Client, server: LiveServer, media: Path, tmp_path: Path
) -> None:
    data = (media / "red.png").read_bytes()
    created = client.post("/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    patched = client.patch(
        url,
        content=data,
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert patched.status_code == 204, patched.text
    upload_id = url.rstrip("/").rsplit("/", 1)[1]
    job = finished(client, convert(client, media / "grey.mp4", {}, watermark_upload_id=upload_id))
    assert job["options"]["watermark"] is True
    red, green, _ = rgb_at(download(client, job, tmp_path, "tus.mp4"), WIDTH - 30, HEIGHT - 30)
    assert red > 200 and green < 60
    again = convert(client, media / "grey.mp4", {}, watermark_upload_id=upload_id)
    body = assert_problem(again, 422, "invalid_source")
    assert body["errors"][0]["field"] == "watermark_upload_id"
    # The job's parts went with its input when it ended; the upload's bytes with its use.
    files = server.settings.data_dir / "files"
    assert not [p for p in stored_blobs(files) if p.parent.name == "inputs"]


# -- refusals -----------------------------------------------------------------------------

ASS_WITH_FONT = (
    "[Script Info]\nScriptType: v4.00+\n\n[Fonts]\nfontname: evil.ttf\nM3$%^&*\n\n[Events]\n"
    "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
    "Dialogue: 0,0:00:00.00,0:00:01.00,Default,,0,0,0,,hi\n"
)


def test_a_good_part_is_not_kept_when_the_other_is_refused(
    client: httpx.Client, server: LiveServer, media: Path
) -> None:
    files = server.settings.data_dir / "files"
    before = set(stored_blobs(files))
    parts = {
        "watermark": ("red.png", (media / "red.png").read_bytes()),  # checked and stored first
        "subtitles": ("s.srt", b"\xff\xfe not UTF-8"),
    }
    body = assert_problem(convert(client, media / "grey.mp4", parts), 422, "unsupported_media")
    assert body["errors"] == [{"field": "subtitles", "message": "are not UTF-8 text"}]
    assert set(stored_blobs(files)) <= before


@pytest.mark.parametrize(
    ("parts", "fields", "status", "code", "field"),
    [
        ({"watermark": ("w.png", b"\x89PNG\r\n\x1a\n" + b"x" * 200)}, {}, 422,
         "unsupported_media", "watermark"),
        ({"watermark": ("w.gif", b"GIF89a" + b"\x00" * 100)}, {}, 422, "unsupported_media",
         "watermark"),
        ({"watermark": ("w.png", b"\x89PNG" + b"x" * 5000)}, {}, 413, "too_large", "watermark"),
        ({"subtitles": ("s.ass", ASS_WITH_FONT.encode())}, {}, 422, "unsupported_media",
         "subtitles"),
        ({"subtitles": ("s.srt", SRT.encode("utf-16"))}, {}, 422, "unsupported_media",
         "subtitles"),
        ({"subtitles": ("s.txt", b"just some words\n")}, {}, 422, "unsupported_media",
         "subtitles"),
        ({}, {"watermark": "true"}, 422, "unsupported_media", "watermark"),  # a part: the file
        ({}, {"watermark_opacity": "0.5"}, 422, "invalid_option", "watermark_opacity"),
        ({"subtitles": ("s.srt", SRT.encode())}, {"format": "gif", "subtitles_mode": "track"},
         422, "invalid_option", "subtitles_mode"),
        ({"watermark": ("w.png", b"")}, {"format": "mp3"}, 422, "invalid_option", "watermark"),
        ({}, {"watermark_upload_id": "not-an-id"}, 422, "invalid_option",
         "watermark_upload_id"),
        ({"watermark": ("w.png", b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n")}, {}, 422,
         "unsupported_media", "watermark"),
        ({"subtitles": ("s.ass", ASS_WITH_FONT.replace("[Fonts]", "[Graphics]").encode())}, {},
         422, "unsupported_media", "subtitles"),
        ({"watermark": ("w.png", b"\x89PNG")},
         {"watermark_upload_id": "00000000-0000-0000-0000-000000000000"}, 422,
         "invalid_option", "watermark_upload_id"),
    ],
)  # fmt: skip
def test_bad_parts_are_refused_and_nothing_is_kept(
    client: httpx.Client,
    server: LiveServer,
    media: Path,
    parts: dict[str, tuple[str, bytes]],
    fields: dict[str, str],
    status: int,
    code: str,
    field: str,
) -> None:
    files = server.settings.data_dir / "files"
    before = set(stored_blobs(files))
    body = assert_problem(convert(client, media / "grey.mp4", parts, **fields), status, code)
    assert field in {e["field"] for e in body.get("errors", [])}, body
    assert set(stored_blobs(files)) <= before


def test_watermark_image_too_large(tmp_path: Path, media: Path) -> None:
    """An image over the side limit is refused, however few bytes it takes."""
    big = tmp_path / "big.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=4100x16", "-frames:v", "1", str(big))
    settings = make_settings(tmp_path, rate_limit_per_second=0)
    with running_server(settings) as live, live.client() as client:
        answer = convert(client, media / "grey.mp4", {"watermark": ("big.png", big.read_bytes())})
        body = assert_problem(answer, 422, "unsupported_media")
        assert body["errors"][0]["field"] == "watermark"
        assert not stored_blobs(live.settings.data_dir / "files")


def test_overlays_are_not_text_fields(client: httpx.Client, media: Path) -> None:
    """In a query or a JSON body `watermark` and `subtitles` can only be named uploads."""
    raw = client.post(
        "/convert",
        params={"watermark": "true"},
        content=(media / "grey.mp4").read_bytes(),
        headers={"Content-Type": "video/mp4"},
    )
    assert assert_problem(raw, 422, "invalid_option")["errors"][0]["field"] == "watermark"
    named = client.post(
        "/convert",
        json={
            "source_url": "https://example.com/a.mp4",
            "subtitles": "1\n00:00:00,000 --> 00:00:01,000\nhi",
        },
    )
    assert assert_problem(named, 422, "invalid_option")["errors"][0]["field"] == "subtitles"


# -- the subtitles' rewrite ---------------------------------------------------------------


def test_subtitles_are_rewritten_with_the_shipped_font() -> None:
    ass = ASS_WITH_FONT.replace("[Fonts]\nfontname: evil.ttf\nM3$%^&*\n\n", "")
    ass = ass.replace(",,hi", ",,{\\fnEvil Font\\b1}hi")
    text, kind = clean_subtitles(ass.encode())
    assert kind == "ass" and "Evil" not in text and "{\\b1}hi" in text
    assert f"Style: Default,{FONT_FAMILY}," in text
    srt_text, srt_kind = clean_subtitles(
        b'\xef\xbb\xbf1\r\n00:00:00,500 --> 00:00:01,000\r\n<font face="X">a</font>\r\n'
    )
    assert srt_kind == "srt" and "Dialogue: 0,0:00:00.50,0:00:01.00" in srt_text
    assert "X" not in srt_text.split("[Events]")[1]
    with pytest.raises(UnsupportedMedia):
        clean_subtitles(b"WEBVTT\n\n")  # no cue
    with pytest.raises(UnsupportedMedia):
        clean_subtitles(b"1\n00:00:00,000 --> 00:00:01,000\n" + b"x" * 3000 + b"\n")


# -- the options' rules -------------------------------------------------------------------


def _errors(fields: dict[str, str], attached: tuple[str, ...] = ()) -> dict[str, str]:
    options, errors = attachment_fields(fields, attached)
    try:
        resolve_options(options)
    except InvalidOption as exc:
        errors += exc.errors
    return {e["field"]: e["message"] for e in errors}


@pytest.mark.parametrize(
    ("fields", "attached", "field", "fragment"),
    [
        ({"watermark_scale": "0.3"}, (), "watermark_scale", "only with a watermark"),
        ({"subtitles_mode": "track"}, (), "subtitles_mode", "only with subtitles"),
        ({"format": "m4a"}, ("watermark",), "watermark", "no moving picture"),
        ({"video_codec": "copy"}, ("watermark",), "watermark", "video_codec=copy"),
        ({"video_codec": "copy"}, ("subtitles",), "subtitles", "cannot be burned in"),
        ({"format": "dash", "subtitles_mode": "track"}, ("subtitles",), "subtitles_mode",
         "holds no subtitle track"),
        ({"subtitles": "x"}, (), "subtitles", "multipart part `subtitles`"),
    ],
)  # fmt: skip
def test_overlay_option_rules(
    fields: dict[str, str], attached: tuple[str, ...], field: str, fragment: str
) -> None:
    errors = _errors(fields, attached)
    assert fragment in errors[field], errors


def test_overlay_defaults_apply_only_with_the_part() -> None:
    plain = resolve_options({})
    assert (plain.watermark, plain.watermark_position, plain.subtitles_mode) == (False, None, None)
    options, errors = attachment_fields(
        {"subtitles_upload_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12}, ()
    )
    both = resolve_options({**options, "video_codec": "copy", "subtitles_mode": "track"})
    assert not errors and both.subtitles and both.subtitles_mode == "track"  # a track: copy is fine


# -- the command, format by format --------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "codecs"), [("mkv", ("ass", "ssa")), ("webm", ("webvtt",)), ("mov", ("mov_text",))]
)
async def test_soft_track_in_each_container(
    media: Path, tmp_path: Path, fmt: str, codecs: tuple[str, ...]
) -> None:
    settings = make_settings(tmp_path)
    stored = tmp_path / "stored.ass"
    stored.write_text(clean_subtitles(SRT.encode())[0])
    subtitles = job_subtitles(stored, tmp_path / "job.ass", start=None)
    options = resolve_options(
        {**attachment_fields({"format": fmt, "subtitles_mode": "track"}, ("subtitles",))[0]}
    )
    files = OverlayFiles(subtitles=subtitles, burn_subtitles=False)
    output = tmp_path / f"out.{fmt}"
    info = await probe(media / "grey.mp4", settings)
    argv = build_command(FFMPEG, media / "grey.mp4", output, options, info, settings, files)
    await run_to_end(argv, settings)
    with av.open(str(output)) as container:
        (track,) = container.streams.subtitles
        assert track.codec_context.name in codecs
        texts = b"".join(bytes(p) for p in container.demux(track) if p.size)
    assert b"HELLO WORLD" in texts


async def test_watermark_on_a_gif(media: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    options = resolve_options(
        {
            **attachment_fields(
                {"format": "gif", "watermark_position": "top-left"}, ("watermark",)
            )[0]
        }
    )
    files = OverlayFiles(watermark=media / "red.png")
    output = tmp_path / "out.gif"
    info = await probe(media / "grey.mp4", settings)
    argv = build_command(FFMPEG, media / "grey.mp4", output, options, info, settings, files)
    assert "-filter_complex" in argv and "paletteuse" in argv[argv.index("-filter_complex") + 1]
    await run_to_end(argv, settings)
    red, green, _ = rgb_at(output, 6 + 10, 6 + 10, index=3)
    assert red > 200 and green < 60


def test_watermark_in_every_rendition_of_a_package(client: httpx.Client, media: Path) -> None:
    png = ("red.png", (media / "red.png").read_bytes())
    job = finished(
        client,
        convert(client, media / "grey.mp4", {"watermark": png}, format="hls", renditions="180,90"),
    )
    paths = [f["path"] for f in job["result"]["files"]]
    for name, width, height in (("180p", 320, 180), ("90p", 160, 90)):
        init = client.get(f"/job/{job['id']}/files/{name}/init.mp4").content
        segment = next(p for p in paths if p.startswith(f"{name}/seg_"))
        data = init + client.get(f"/job/{job['id']}/files/{segment}").content
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"vidq-test-{job['id']}-{name}.mp4"
        path.write_bytes(data)
        try:
            # 15 % of the width, 2 % margin, at the rendition's own scale.
            red, green, _ = rgb_at(
                path, width - round(0.02 * width) - 4, height - 4 - round(0.02 * width), index=2
            )
        finally:
            path.unlink()
        assert red > 180 and green < 80, (name, red, green)


async def test_only_a_single_still_png_is_a_watermark(media: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    png = (media / "red.png").read_bytes()
    assert (await check_watermark(media / "red.png", settings)).kind == "png"
    twice = tmp_path / "twice.png"
    twice.write_bytes(png + png)
    with pytest.raises(UnsupportedMedia, match="more than one image"):
        await check_watermark(twice, settings)
    animated = tmp_path / "animated.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=16x16:d=0.2", "-f", "apng", str(animated))
    with pytest.raises(UnsupportedMedia):  # not a PNG the still-image readers take
        await check_watermark(animated, settings)
    ihdr_end = 8 + 12 + 13
    fake = tmp_path / "actl.png"
    fake.write_bytes(png[:ihdr_end] + b"\x00\x00\x00\x08acTL" + b"\x00" * 12 + png[ihdr_end:])
    with pytest.raises(UnsupportedMedia, match="animated"):
        await check_watermark(fake, settings)


def test_parts_are_owned_with_the_input() -> None:
    """Retention and the janitor see a part as the job's input: kept while the job is
    unfinished, swept with the input after."""
    job_id = "8a6e0804-2bd0-4672-b79d-d97027f9071a"
    for role in PART_ROLES:
        assert owner_of(part_key(job_id, role)) == BlobOwner(job_id, "input")
    with pytest.raises(ValueError):
        part_key(job_id, "../x")


def test_an_idempotency_key_stands_for_the_parts_too(client: httpx.Client, media: Path) -> None:
    def send(image: str) -> httpx.Response:
        files: dict[str, Any] = {
            "file": ("grey.mp4", (media / "grey.mp4").read_bytes(), "video/mp4"),
            "watermark": (image, (media / image).read_bytes()),
        }
        return client.post("/convert", files=files, headers={"Idempotency-Key": "logo-1"})

    first = send("red.png")
    assert first.status_code == 202, first.text
    again = send("red.png")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert_problem(send("red.jpg"), 422, "idempotency_key_reused")
    wait_done(client, first.json()["id"])

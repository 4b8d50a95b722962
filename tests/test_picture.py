"""The picture options, with the real ffmpeg on tiny generated clips: HDR tone-mapping and
keeping, rotate/flip/crop (explicit and detected), deinterlacing; the probe's colour and
interlacing facts; and the same through the API (the worker's analysis included)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import subprocess
from pathlib import Path

import av
import pytest

from vidq.config import Settings
from vidq.errors import InvalidOption
from vidq.jobs.options import resolve_options
from vidq.media.analysis import merge_boxes, parse_cropdetect, parse_idet
from vidq.media.filters import geometry_filters, makes_new_pictures
from vidq.media.hdr import keep_hdr_args
from vidq.media.info import MediaInfo, VideoInfo
from vidq.media.probe import probe
from vidq.worker.outputs import OutputPlan, plan_outputs
from vidq.worker.picture import prepare_picture

from .conftest import LiveServer
from .helpers import (
    assert_problem,
    media_settings,
    post_convert,
    run_to_end,
    submit_job,
    wait_completed,
)
from .media_clips import FFMPEG, ffmpeg

MIB = 1024**2
# x265's master-display (G, B, R, white point in 0.00002, L in 0.0001 cd/m²) and max-cll.
MASTERING = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(12000000,50)"
MASTERING_VALUES = (0.68, 0.32, 0.265, 0.69, 0.15, 0.06, 0.3127, 0.329, 1200.0, 0.005)
SIZE = "320x180"
# A turning black-to-white gradient: smooth, so idet is not fooled by sharp edges, and with
# every colour and position given (the defaults are random), so the same each time.
GRADIENT = f"gradients=s={SIZE}:c0=white:c1=black:x0=0:y0=0:x1=320:y1=180:speed=0.05"


pytestmark = pytest.mark.usefixtures("no_spare_prober")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return media_settings(tmp_path)


def _hdr_clip(path: Path, transfer: str, x265_params: str) -> Path:
    """1 s of testsrc2 converted (not just tagged) to BT.2020 with the given transfer, 10-bit."""
    convert = (
        "format=yuv420p,zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:npl=100"
        f":t={transfer}:p=bt2020:m=bt2020nc:r=tv,format=yuv420p10le"
    )
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate=25:duration=1", "-vf", convert),
        *("-c:v", "libx265", "-x265-params", f"log-level=error:{x265_params}"),
        *("-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc"),
        str(path),
    )
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated inputs, made once for the module."""
    folder = tmp_path_factory.mktemp("picture")
    x264 = ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p")
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate=25:duration=1", *x264,
           str(folder / "sdr.mp4"))  # fmt: skip
    _hdr_clip(
        folder / "pq.mp4",
        "smpte2084",
        f"hdr10=1:repeat-headers=1:master-display={MASTERING}:max-cll=1100,300",
    )
    _hdr_clip(folder / "hlg.mp4", "arib-std-b67", "repeat-headers=1")
    # A black picture with a white top-left corner: where it ends up shows rotation and flips.
    corner = "drawbox=x=0:y=0:w=80:h=45:color=white:t=fill"
    ffmpeg("-f", "lavfi", "-i", f"color=c=black:s={SIZE}:r=25:d=1", "-vf", corner, *x264,
           str(folder / "corner.mp4"))  # fmt: skip
    ffmpeg("-display_rotation", "90", "-i", str(folder / "corner.mp4"), "-c", "copy",
           str(folder / "corner-rotated.mp4"))  # fmt: skip
    # A 320x140 picture letterboxed into 320x180 (20 px bars above and below).
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x140:rate=25:duration=2",
           "-vf", "pad=320:180:0:20:black", *x264, str(folder / "letterbox.mp4"))  # fmt: skip
    # Interlaced: 50 moving pictures a second woven into 25 top-field-first frames.
    ffmpeg("-f", "lavfi", "-i", f"{GRADIENT}:rate=50:d=1",
           "-vf", "tinterlace=mode=interleave_top,setfield=tff", *x264,
           "-flags", "+ildct+ilme", "-x264-params", "tff=1",
           str(folder / "interlaced.mp4"))  # fmt: skip
    return folder


async def _make(
    source: Path, raw: dict[str, str], settings: Settings, out_dir: Path
) -> tuple[OutputPlan, MediaInfo | None]:
    """Run a job's pictures as the worker does (analysis, plan, every step); the plan and
    the probed main output (None for a package or a still)."""
    info = await probe(source, settings)
    options, info = await prepare_picture(
        resolve_options(raw), info, source, settings, asyncio.Event()
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_outputs(options, info, source, out_dir, settings, main_name="out")
    for step in plan.steps:
        await run_to_end(step.argv, settings, cwd=out_dir)
    if plan.is_package or raw.get("format") == "jpg":
        return plan, None
    return plan, await probe(plan.main_path, settings)


def _gray_frames(path: Path) -> list[tuple[int, int, bytes]]:
    """Each frame of the first video stream as 8-bit luma: (width, height, rows packed)."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            gray = frame.reformat(format="gray")
            plane = gray.planes[0]
            data = bytes(plane)
            rows = b"".join(
                data[row * plane.line_size : row * plane.line_size + gray.width]
                for row in range(gray.height)
            )
            frames.append((gray.width, gray.height, rows))
    return frames


def _mean_luma(path: Path) -> float:
    frames = _gray_frames(path)
    return sum(sum(rows) / len(rows) for _, _, rows in frames) / len(frames)


def _bright_corner(path: Path) -> str:
    """Which quarter-size corner of the first frame is the brightest: tl, tr, bl or br."""
    width, height, rows = _gray_frames(path)[0]
    w, h = width // 4, height // 4
    origins = {"tl": (0, 0), "tr": (width - w, 0), "bl": (0, height - h), "br": (width - w, height - h)}  # fmt: skip

    def mean(x0: int, y0: int) -> float:
        return sum(sum(rows[y * width + x0 : y * width + x0 + w]) for y in range(y0, y0 + h)) / (
            w * h
        )

    return max(origins, key=lambda name: mean(*origins[name]))


def _first_frame_side_data(path: Path) -> dict[str, bytes]:
    with av.open(str(path)) as container:
        frame = next(container.decode(container.streams.video[0]))
        return {str(s.type).rsplit(".", 1)[-1]: bytes(s) for s in frame.side_data}


def _idet(path: Path) -> tuple[int, int, int]:
    """ffmpeg's idet over the whole file, run here: (tff, bff, progressive) frames."""
    done = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-i", str(path), "-vf", "idet", "-an", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    counts = parse_idet(done.stderr)
    assert counts is not None, done.stderr
    return counts


# -- the probe ----------------------------------------------------------------------------


async def test_probe_reports_colour_depth_hdr_and_interlacing(
    clips: Path, settings: Settings
) -> None:
    pq = await probe(clips / "pq.mp4", settings)
    shown = pq.to_api()["video"]
    assert {k: shown[k] for k in ("bit_depth", "color_primaries", "color_transfer")} == {
        "bit_depth": 10,
        "color_primaries": "bt2020",
        "color_transfer": "smpte2084",
    }
    assert shown["color_space"] == "bt2020nc" and shown["hdr"] == "pq"
    assert shown["interlaced"] is False
    assert pq.video is not None and pq.video.mastering_display == MASTERING_VALUES
    assert pq.video.content_light == (1100, 300)
    assert MediaInfo.from_json(pq.to_json()) == pq

    hlg = (await probe(clips / "hlg.mp4", settings)).to_api()["video"]
    assert (hlg["hdr"], hlg["color_transfer"], hlg["bit_depth"]) == ("hlg", "arib-std-b67", 10)
    sdr = (await probe(clips / "sdr.mp4", settings)).to_api()["video"]
    assert (sdr["hdr"], sdr["bit_depth"], sdr["interlaced"]) == (None, 8, False)
    interlaced = (await probe(clips / "interlaced.mp4", settings)).to_api()["video"]
    assert interlaced["interlaced"] is True


def test_a_video_stored_before_the_colour_facts_still_loads() -> None:
    old = {"codec": "h264", "width": 16, "height": 16, "fps": 25.0, "pix_fmt": "yuv420p"}
    info = MediaInfo.from_json(
        {"container": "mp4", "format_name": "mov", "duration_seconds": 1.0, "video": old, "audio": None}
    )  # fmt: skip
    assert info.video is not None and info.video.hdr is None and not info.video.interlaced
    assert info.to_api()["video"]["bit_depth"] is None


# -- HDR ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pq", "hlg"])
async def test_hdr_is_tone_mapped_to_sdr_bt709(
    clips: Path, settings: Settings, tmp_path: Path, name: str
) -> None:
    plan, out = await _make(clips / f"{name}.mp4", {"poster": "true"}, settings, tmp_path)
    assert out is not None and out.video is not None
    video = out.to_api()["video"]
    assert (video["color_primaries"], video["color_transfer"], video["color_space"]) == (
        "bt709",
        "bt709",
        "bt709",
    )
    assert video["bit_depth"] == 8 and video["hdr"] is None
    assert "MASTERING_DISPLAY_METADATA" not in _first_frame_side_data(plan.main_path)
    # The picture looks like the SDR original it was made from: the mean luma is in the SDR
    # range and near the original's (PQ or HLG code values shown as SDR are far darker
    # or lighter, and the hable operator alone makes this picture ~45 levels darker).
    sdr_luma = _mean_luma(clips / "sdr.mp4")
    luma = _mean_luma(plan.main_path)
    assert 40 < luma < 200 and abs(luma - sdr_luma) < 20, (luma, sdr_luma)
    poster_luma = _mean_luma(plan.stills_dir / "poster.jpg")
    assert abs(poster_luma - sdr_luma) < 25, (poster_luma, sdr_luma)


@pytest.mark.parametrize(("codec", "fmt"), [("h265", "mp4"), ("av1", "mkv")])
async def test_hdr_keep_makes_10_bit_hdr10_with_its_metadata(
    clips: Path, settings: Settings, tmp_path: Path, codec: str, fmt: str
) -> None:
    raw = {"video_codec": codec, "format": fmt, "hdr": "keep"}
    _, out = await _make(clips / "pq.mp4", raw, settings, tmp_path)
    assert out is not None and out.video is not None
    video = out.video
    assert (video.bit_depth, video.color_primaries, video.color_transfer, video.hdr) == (
        10,
        "bt2020",
        "smpte2084",
        "pq",
    )
    assert video.mastering_display == pytest.approx(MASTERING_VALUES, abs=1e-4)
    assert video.content_light == (1100, 300)


def test_hdr_keep_writes_the_mastering_display_in_each_encoders_units() -> None:
    video = VideoInfo(
        "hevc", 320, 180, 25.0, "yuv420p10le", 0, bit_depth=10, color_primaries="bt2020",
        color_transfer="smpte2084", color_space="bt2020nc",
        mastering_display=MASTERING_VALUES, content_light=(1100, 300),
    )  # fmt: skip
    x265 = keep_hdr_args("h265", ["-c:v", "libx265", "-x265-params", "log-level=error"], video)
    params = x265[x265.index("-x265-params") + 1].split(":")
    assert params[0] == "log-level=error" and "hdr10=1" in params
    assert f"master-display={MASTERING}" in params and "max-cll=1100,300" in params
    assert x265[-8:] == [
        *("-color_primaries", "bt2020", "-color_trc", "smpte2084"),
        *("-colorspace", "bt2020nc", "-color_range", "tv"),
    ]
    svt = keep_hdr_args("av1", ["-c:v", "libsvtav1"], video)
    assert svt[svt.index("-svtav1-params") + 1] == (
        "mastering-display=G(0.2650,0.6900)B(0.1500,0.0600)R(0.6800,0.3200)"
        "WP(0.3127,0.3290)L(1200.0000,0.0050):content-light=1100,300"
    )
    with pytest.raises(ValueError):
        keep_hdr_args("h264", [], video)


async def test_hdr_keep_keeps_hlg(clips: Path, settings: Settings, tmp_path: Path) -> None:
    raw = {"video_codec": "h265", "hdr": "keep"}
    _, out = await _make(clips / "hlg.mp4", raw, settings, tmp_path)
    assert out is not None and out.video is not None
    assert (out.video.bit_depth, out.video.hdr, out.video.color_primaries) == (10, "hlg", "bt2020")


def test_hdr_keep_needs_a_codec_that_carries_hdr() -> None:
    for raw in ({"hdr": "keep"}, {"hdr": "keep", "format": "webm"}, {"hdr": "keep", "format": "hls"}):  # fmt: skip
        with pytest.raises(InvalidOption) as caught:
            resolve_options(raw)
        assert [e["field"] for e in caught.value.errors] == ["hdr"]  # type: ignore[attr-defined]
    assert resolve_options({"hdr": "keep", "video_codec": "av1", "format": "webm"}).hdr == "keep"
    assert resolve_options({}).hdr == "tonemap" and resolve_options({}).deinterlace == "auto"
    assert resolve_options({"format": "mp3"}).hdr is None


# -- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "size", "corner"),
    [
        ({}, (320, 180), "tl"),
        ({"rotate": "90"}, (180, 320), "tr"),
        ({"rotate": "180"}, (320, 180), "br"),
        ({"rotate": "270"}, (180, 320), "bl"),
        ({"flip": "h"}, (320, 180), "tr"),
        ({"flip": "v"}, (320, 180), "bl"),
        ({"rotate": "90", "flip": "v"}, (180, 320), "br"),
        ({"crop": "160:90:0:0", "rotate": "90", "height": "120"}, (68, 120), "tr"),
    ],
)
async def test_rotate_flip_and_crop_turn_the_picture_as_displayed(
    clips: Path,
    settings: Settings,
    tmp_path: Path,
    raw: dict[str, str],
    size: tuple[int, int],
    corner: str,
) -> None:
    _, out = await _make(clips / "corner.mp4", raw, settings, tmp_path)
    assert out is not None and out.video is not None
    assert (out.video.width, out.video.height, out.video.rotation) == (*size, 0)
    assert _bright_corner(tmp_path / "output.mp4") == corner


async def test_input_rotation_comes_before_crop_and_rotate(
    clips: Path, settings: Settings, tmp_path: Path
) -> None:
    # Stored 320x180 with its white corner top-left, displayed turned 90° counterclockwise
    # (180x320, white corner bottom-left): ffmpeg's own autorotate shows it so too.
    upright = tmp_path / "upright.mp4"
    ffmpeg("-i", str(clips / "corner-rotated.mp4"), "-c:v", "libx264", str(upright))
    assert _bright_corner(upright) == "bl"
    _, out = await _make(clips / "corner-rotated.mp4", {}, settings, tmp_path / "plain")
    assert out is not None and out.video is not None
    assert (out.video.width, out.video.height, out.video.rotation) == (180, 320, 0)
    assert _bright_corner(tmp_path / "plain" / "output.mp4") == "bl"
    # The crop is in displayed pixels: the bottom 90x160 of the upright picture, turned.
    raw = {"crop": "90:160:0:160", "rotate": "90", "poster": "true"}
    plan, out = await _make(clips / "corner-rotated.mp4", raw, settings, tmp_path / "turned")
    assert out is not None and out.video is not None
    assert (out.video.width, out.video.height) == (160, 90)
    assert _bright_corner(plan.main_path) == "tl"
    assert _bright_corner(plan.stills_dir / "poster.jpg") == "tl"


async def test_crop_is_in_displayed_pixels_of_an_anamorphic_input(
    settings: Settings, tmp_path: Path
) -> None:
    # Stored 160x180 with pixels twice as wide as tall (shown 320x180); white at stored
    # x 80-120, y 0-45, which is shown at x 160-240.
    source = tmp_path / "anamorphic.mkv"
    white = "drawbox=x=80:y=0:w=40:h=45:color=white:t=fill,setsar=2"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=160x180:r=25:d=1", "-vf", white,
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(source))  # fmt: skip
    info = await probe(source, settings)
    assert info.video is not None and (info.video.width, info.video.height) == (320, 180)
    left, out = await _make(source, {"crop": "160:90:0:0"}, settings, tmp_path / "left")
    assert out is not None and out.video is not None
    assert (out.video.width, out.video.height) == (160, 90)
    assert _mean_luma(left.main_path) < 20  # all black: the white is shown right of x 160
    right, _ = await _make(source, {"crop": "160:90:160:0"}, settings, tmp_path / "right")
    assert _bright_corner(right.main_path) == "tl"


async def test_auto_crop_finds_the_letterbox_bars(
    clips: Path, settings: Settings, tmp_path: Path
) -> None:
    plan, out = await _make(
        clips / "letterbox.mp4", {"crop": "auto", "storyboard": "true"}, settings, tmp_path
    )
    assert plan.options.crop is not None
    width, height, x, y = (int(n) for n in plan.options.crop.split(":"))
    assert abs(width - 320) <= 4 and abs(height - 140) <= 4
    assert abs(x) <= 4 and abs(y - 20) <= 4
    assert out is not None and out.video is not None
    assert (out.video.width, out.video.height) == (width, height)
    # No bars: no crop.
    plain, _ = await _make(clips / "sdr.mp4", {"crop": "auto"}, settings, tmp_path / "sdr")
    assert plain.options.crop is None


async def test_auto_crop_applies_to_packages(
    clips: Path, settings: Settings, tmp_path: Path
) -> None:
    plan, _ = await _make(
        clips / "letterbox.mp4", {"format": "hls", "crop": "auto"}, settings, tmp_path
    )
    assert [(r.width, r.height) for r in plan.renditions] == [(320, 140)]


def test_crop_boxes_are_merged_and_cropdetect_read() -> None:
    video = VideoInfo("h264", 320, 180, 25.0, "yuv420p", 0)
    assert merge_boxes([(320, 140, 0, 20), (300, 150, 10, 10)], video) == (320, 150, 0, 10)
    assert merge_boxes([(320, 180, 0, 0)], video) is None
    assert merge_boxes([], video) is None
    assert parse_cropdetect("x crop=320:140:0:20\ny crop=318:140:2:20\n") == (318, 140, 2, 20)
    assert parse_cropdetect("crop=-304:-176:312:184") is None
    assert parse_cropdetect("nothing") is None


def test_geometry_options_are_parsed_strictly() -> None:
    for raw in ({"rotate": "45"}, {"flip": "hv"}, {"crop": "10:10:0:0"}, {"crop": "1:2:3"},
                {"crop": "-100:50:0:0"}, {"deinterlace": "yes"}, {"hdr": "sdr"}):  # fmt: skip
        with pytest.raises(InvalidOption) as caught:
            resolve_options(raw)
        assert [e["field"] for e in caught.value.errors] == list(raw)  # type: ignore[attr-defined]
    assert resolve_options({"crop": "0320:0140:0:020"}).crop == "320:140:0:20"
    for raw in ({"video_codec": "copy", "rotate": "90"}, {"format": "m4a", "crop": "auto"}):
        with pytest.raises(InvalidOption) as caught:
            resolve_options(raw)
        field = next(k for k in raw if k not in ("video_codec", "format"))
        assert [e["field"] for e in caught.value.errors] == [field]  # type: ignore[attr-defined]


def test_rotation_metadata_is_applied_by_the_chain_itself() -> None:
    options = resolve_options({})
    turned = VideoInfo("h264", 180, 320, 25.0, "yuv420p", 90)
    chain = geometry_filters(options, turned)
    assert chain[0].startswith("sidedata=mode=delete:type=DISPLAYMATRIX")
    assert "transpose=cclock" in chain


def test_what_needs_new_pictures() -> None:
    # For the stream-copy decision: the picture options, and inputs the chain must change.
    plain = VideoInfo("h264", 320, 180, 25.0, "yuv420p", 0)
    default = resolve_options({})
    assert not makes_new_pictures(default, plain)
    for raw in ({"rotate": "180"}, {"flip": "h"}, {"crop": "auto"}, {"crop": "160:90:0:0"}):
        assert makes_new_pictures(resolve_options(raw), plain), raw
    interlaced = dataclasses.replace(plain, interlaced=True)
    assert makes_new_pictures(default, interlaced)
    assert not makes_new_pictures(resolve_options({"deinterlace": "off"}), interlaced)
    assert makes_new_pictures(default, dataclasses.replace(plain, rotation=90))
    pq = dataclasses.replace(plain, codec="hevc", color_transfer="smpte2084")
    assert makes_new_pictures(resolve_options({"video_codec": "h265"}), pq)
    assert not makes_new_pictures(resolve_options({"video_codec": "h265", "hdr": "keep"}), pq)


# -- deinterlacing ------------------------------------------------------------------------


async def test_interlaced_input_is_deinterlaced(
    clips: Path, settings: Settings, tmp_path: Path
) -> None:
    tff, bff, progressive = _idet(clips / "interlaced.mp4")
    assert tff + bff > progressive  # the input really is combed
    # A high quality, so that the encoder keeps what combing there is for idet to see.
    plan, out = await _make(clips / "interlaced.mp4", {"crf": "12"}, settings, tmp_path / "auto")
    assert out is not None and out.video is not None and not out.video.interlaced
    assert out.video.fps == 25.0
    tff, bff, progressive = _idet(plan.main_path)
    assert progressive > 3 * (tff + bff), (tff, bff, progressive)
    off = {"deinterlace": "off", "crf": "12"}
    kept, _ = await _make(clips / "interlaced.mp4", off, settings, tmp_path)
    tff, bff, progressive = _idet(kept.main_path)
    assert tff + bff > progressive


async def test_a_flag_that_idet_does_not_confirm_is_not_deinterlaced(
    clips: Path, settings: Settings, tmp_path: Path
) -> None:
    # Flagged interlaced, but every frame is one moment (progressive content).
    flagged = tmp_path / "flagged.mp4"
    ffmpeg("-f", "lavfi", "-i", f"{GRADIENT}:rate=25:d=1",
           "-vf", "setfield=tff", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-flags", "+ildct+ilme", "-x264-params", "tff=1", str(flagged))  # fmt: skip
    info = await probe(flagged, settings)
    assert info.video is not None and info.video.interlaced
    _, prepared = await prepare_picture(
        resolve_options({}), info, flagged, settings, asyncio.Event()
    )
    assert prepared.video is not None and not prepared.video.interlaced
    interlaced = await probe(clips / "interlaced.mp4", settings)
    _, prepared = await prepare_picture(
        resolve_options({}), interlaced, clips / "interlaced.mp4", settings, asyncio.Event()
    )
    assert prepared.video is not None and prepared.video.interlaced


# -- through the API ------------------------------------------------------------------------


def test_picture_options_through_the_api(live_server: LiveServer, clips: Path) -> None:
    with live_server.client() as client:
        job = submit_job(client, clips / "pq.mp4", rotate="90", crop="300:160:10:10")
        video = job["input"]["video"]
        assert (video["hdr"], video["bit_depth"], video["color_transfer"]) == (
            "pq",
            10,
            "smpte2084",
        )
        assert (video["color_primaries"], video["color_space"], video["interlaced"]) == (
            "bt2020",
            "bt2020nc",
            False,
        )
        assert job["options"]["hdr"] == "tonemap" and job["options"]["rotate"] == 90
        letterboxed = submit_job(client, clips / "letterbox.mp4", crop="auto")
        done = wait_completed(client, job["id"])
        assert (done["result"]["video"]["width"], done["result"]["video"]["height"]) == (160, 300)
        done = wait_completed(client, letterboxed["id"])
        assert abs(done["result"]["video"]["height"] - 140) <= 4
        assert done["options"]["crop"] == "auto"

        outside = assert_problem(
            post_convert(client, clips / "sdr.mp4", crop="320:100:10:0"), 422, "invalid_option"
        )
        assert [e["field"] for e in outside["errors"]] == ["crop"]
        assert re.search(r"320x180", outside["errors"][0]["message"])
        keep = assert_problem(
            post_convert(client, clips / "pq.mp4", hdr="keep"), 422, "invalid_option"
        )
        assert [e["field"] for e in keep["errors"]] == ["hdr"]

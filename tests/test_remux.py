"""Smart remux: an input that already is what the job asks for is copied, not re-encoded.

Real ffmpeg on tiny clips through a live server: a conforming H.264 + AAC clip comes out
of `mp4-h264` with the very same packets, the moov box in front, the same duration, and
plays in Chromium; each thing that asks for new pixels or samples (and `transcode=always`)
really re-encodes; `trim=fast` cuts at a key frame while a plain trim stays frame-exact;
WebM and the sound presets remux too. The decision's finer rules (profiles, levels,
containers, the picture, overlay and sound options) are checked on probes as the prober writes
them, without ffmpeg.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from vidq.errors import InvalidOption
from vidq.jobs.option_fields import OPTION_FIELDS
from vidq.jobs.options import resolve_options
from vidq.jobs.remux import REENCODE_OPTIONS, decide_remux
from vidq.media.info import AudioInfo, MediaInfo, VideoInfo

from .browser import browser_page, require_chromium
from .conftest import LiveServer, module_server
from .helpers import convert_completed, submit_job, wait_done
from .media_clips import ffmpeg, make_clip

FPS = 25


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("remux")
    with module_server(folder, workers=2, rate_limit_per_second=0) as live:
        yield live


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("remux-media")


@pytest.fixture(scope="module")
def h264(media: Path) -> Path:
    """2 s of 160x90 H.264 (High, yuv420p) + stereo AAC, its moov box at the end."""
    return make_clip(media / "h264.mp4", seconds=2, channels=2)


@pytest.fixture(scope="module")
def keyed(media: Path) -> Path:
    """3 s of H.264 + AAC with a key frame every second exactly (at 0, 1 and 2 s)."""
    path = media / "keyed.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc=size=160x90:rate={FPS}:duration=3"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3"),
        *("-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(FPS), "-keyint_min", str(FPS)),
        *("-sc_threshold", "0", "-c:a", "aac", str(path)),
    )
    return path


def convert(server: LiveServer, clip: Path, **options: str) -> dict[str, Any]:
    """The finished Job of `clip` converted with `options`; it must complete."""
    with server.client() as client:
        return convert_completed(client, clip, timeout=120, **options)


def download(job: dict[str, Any], folder: Path) -> Path:
    path = folder / f"{job['id']}-{job['result']['filename']}"
    answer = httpx.get(job["result"]["download_url"])
    assert answer.status_code == 200
    path.write_bytes(answer.content)
    return path


def packets(path: Path, kind: str) -> list[tuple[bool, str]]:
    """Each coded packet of the file's first `kind` stream: (key frame?, SHA-256 of its bytes)."""
    with av.open(str(path)) as container:
        stream = (container.streams.video if kind == "video" else container.streams.audio)[0]
        return [
            (packet.is_keyframe, hashlib.sha256(bytes(packet)).hexdigest())
            for packet in container.demux(stream)
            if packet.size
        ]


def top_level_boxes(path: Path) -> list[str]:
    """The ISO BMFF boxes at the top of an MP4 file, in order."""
    boxes, data, at = [], path.read_bytes(), 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        boxes.append(data[at + 4 : at + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        assert size >= 8, boxes
        at += size
    return boxes


def duration_of(path: Path) -> float:
    with av.open(str(path)) as container:
        assert container.duration is not None
        return float(container.duration) / av.time_base


# -- a conforming input is copied -------------------------------------------------------


@pytest.fixture(scope="module")
def remuxed(server: LiveServer, h264: Path, media: Path) -> tuple[dict[str, Any], Path]:
    job = convert(server, h264, preset="mp4-h264")
    return job, download(job, media)


def test_a_conforming_h264_aac_clip_is_copied_packet_for_packet(
    server: LiveServer, h264: Path, remuxed: tuple[dict[str, Any], Path]
) -> None:
    job, output = remuxed
    options = job["options"]
    assert (options["video_codec"], options["audio_codec"]) == ("copy", "copy")
    assert options["crf"] is None and options["audio_bitrate"] is None
    assert options["transcode"] == "auto" and options["preset"] == "mp4-h264"
    assert job["result"]["remuxed"] is True
    assert top_level_boxes(h264).index("moov") > top_level_boxes(h264).index("mdat")
    boxes = top_level_boxes(output)
    assert boxes.index("moov") < boxes.index("mdat")  # +faststart
    for kind in ("video", "audio"):
        assert packets(output, kind) == packets(h264, kind), kind
    assert len(packets(output, "video")) == 2 * FPS
    assert duration_of(output) == pytest.approx(duration_of(h264), abs=0.03)
    assert job["result"]["duration_seconds"] == pytest.approx(
        job["input"]["duration_seconds"], abs=0.03
    )
    assert job["result"]["video"] == {**job["input"]["video"]}


def test_the_job_says_copy_as_soon_as_it_is_queued(server: LiveServer, h264: Path) -> None:
    with server.client() as client:
        queued = submit_job(client, h264)
        assert queued["status"] == "queued"
        assert (queued["options"]["video_codec"], queued["options"]["audio_codec"]) == (
            "copy",
            "copy",
        )
        wait_done(client, queued["id"])


@pytest.mark.browser
def test_the_remuxed_file_plays_to_its_end_in_chromium(
    remuxed: tuple[dict[str, Any], Path], h264: Path
) -> None:
    chromium = require_chromium()
    job, _ = remuxed
    with browser_page(chromium) as page:
        page.set_content("<!doctype html><video muted playsinline></video>")
        page.evaluate(
            """async (url) => {
                const video = document.querySelector("video");
                video.src = url;
                await video.play();
            }""",
            job["result"]["download_url"],
        )
        page.wait_for_function("document.querySelector('video').ended", timeout=20_000)
        played = page.evaluate(
            """() => {
                const video = document.querySelector("video");
                return {duration: video.duration, width: video.videoWidth, error: video.error};
            }"""
        )
    assert played["error"] is None and played["width"] == 160
    assert played["duration"] == pytest.approx(duration_of(h264), abs=0.05)


# -- whatever asks for new pixels or samples re-encodes -----------------------------------

REENCODING_OPTIONS = {
    "width": {"width": "120"},
    "fps": {"fps": "12"},
    "crf": {"crf": "30"},
    "crf at the preset's value": {"crf": "23"},
    "video_bitrate": {"video_bitrate": "300k"},
    "audio_bitrate": {"audio_bitrate": "96k"},
    "start": {"start": "0.4"},
    "end": {"end": "1.2"},
    "transcode=always": {"transcode": "always"},
    "another codec": {"preset": "mp4-h265"},
}


@pytest.fixture(scope="module")
def reencoded(server: LiveServer, h264: Path) -> dict[str, dict[str, Any]]:
    """The conforming clip converted with each option that asks for a re-encode, all queued
    at once."""
    with server.client() as client:
        queued = {
            case: submit_job(client, h264, **options)["id"]
            for case, options in REENCODING_OPTIONS.items()
        }
        return {case: wait_done(client, job_id, timeout=180) for case, job_id in queued.items()}


@pytest.mark.parametrize("case", list(REENCODING_OPTIONS))
def test_an_option_asking_for_new_pixels_or_samples_re_encodes(
    case: str, reencoded: dict[str, dict[str, Any]], h264: Path, media: Path
) -> None:
    job = reencoded[case]
    assert job["status"] == "completed", job["error"]
    assert job["options"]["video_codec"] in ("h264", "h265")
    assert job["options"]["audio_codec"] == "aac"
    assert job["result"]["remuxed"] is False
    output = download(job, media)
    input_packets = set(packets(h264, "video"))
    assert not input_packets & set(packets(output, "video")), "a video packet was copied"
    if case == "audio_bitrate":
        assert packets(output, "audio") != packets(h264, "audio")


@pytest.mark.parametrize(
    ("name", "clip_options", "why"),
    [
        ("rotated.mp4", {"rotation": 90}, "rotation metadata"),
        ("ten-bit.mp4", {"pix_fmt": "yuv420p10le"}, "High 10"),
        ("four-four-four.mp4", {"pix_fmt": "yuv444p"}, "High 4:4:4"),
        ("mp3-sound.mkv", {"audio_codec": "libmp3lame"}, "mp3 audio"),
    ],
)
def test_an_input_that_is_not_what_the_preset_makes_is_re_encoded(
    server: LiveServer, media: Path, name: str, clip_options: dict[str, Any], why: str
) -> None:
    clip = make_clip(media / name, **clip_options)
    job = convert(server, clip, preset="mp4-h264")
    assert job["options"]["video_codec"] == "h264", why
    assert job["result"]["remuxed"] is False
    output = download(job, media)
    with av.open(str(output)) as container:
        video = container.streams.video[0].codec_context
        assert (video.pix_fmt, video.profile) == ("yuv420p", "High")
        assert container.streams.audio[0].codec_context.name == "aac"
    assert not set(packets(clip, "video")) & set(packets(output, "video"))


# -- trims ----------------------------------------------------------------------------


def test_trim_fast_remuxes_from_the_key_frame_before_start(
    server: LiveServer, keyed: Path, media: Path
) -> None:
    job = convert(server, keyed, start="1.4", end="2.6", trim="fast")
    assert job["options"]["video_codec"] == "copy" and job["options"]["trim"] == "fast"
    assert job["result"]["remuxed"] is True
    output = packets(download(job, media), "video")
    source = packets(keyed, "video")
    # The copy starts with the key frame at 1 s (frame 25), the last one at or before
    # 1.4 s, and carries the input's packets on from there unchanged.
    assert [index for index, (key, _) in enumerate(source) if key] == [0, FPS, 2 * FPS]
    assert output[0][0] is True
    assert output == source[FPS : FPS + len(output)]
    assert len(output) >= round(1.6 * FPS)  # at least up to 2.6 s


def test_a_trim_without_trim_fast_is_re_encoded_frame_exact(
    server: LiveServer, keyed: Path, media: Path
) -> None:
    job = convert(server, keyed, start="1.4", end="2.6")
    assert job["options"]["video_codec"] == "h264" and job["result"]["remuxed"] is False
    output = download(job, media)
    frames = grey_frames(output)
    assert len(frames) == round(1.2 * FPS)
    # Its first frame is the input's frame at 1.4 s (35), not the key frame before it.
    source = grey_frames(keyed)
    distances = {n: difference(frames[0], source[n]) for n in (25, 34, 35, 36)}
    assert min(distances, key=lambda n: distances[n]) == 35, distances


def grey_frames(path: Path) -> list[bytes]:
    """Each decoded frame's luma, row by row without padding."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            plane = frame.reformat(format="gray").planes[0]
            rows = bytes(plane)
            frames.append(
                b"".join(
                    rows[row * plane.line_size : row * plane.line_size + plane.width]
                    for row in range(plane.height)
                )
            )
    return frames


def difference(a: bytes, b: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


# -- other formats ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "clip_options", "preset", "kinds"),
    [
        ("vp9-opus.webm", {"channels": 2}, "webm-vp9", ("video", "audio")),
        (
            "vp9-vorbis.mkv",
            {"video_codec": "libvpx-vp9", "audio_codec": "libvorbis"},
            "webm-vp9",
            ("video", "audio"),
        ),
        ("sound.m4a", {"video": False, "channels": 2}, "m4a", ("audio",)),
        ("sound.mp3", {"video": False, "channels": 2}, "mp3", ("audio",)),
        ("with-video.mp4", {}, "m4a", ("audio",)),
    ],
)
def test_webm_and_sound_presets_remux_a_conforming_input(
    server: LiveServer,
    media: Path,
    name: str,
    clip_options: dict[str, Any],
    preset: str,
    kinds: tuple[str, ...],
) -> None:
    clip = make_clip(media / name, **clip_options)
    job = convert(server, clip, preset=preset)
    assert job["result"]["remuxed"] is True
    assert job["options"]["audio_codec"] == "copy"
    output = download(job, media)
    for kind in kinds:
        assert packets(output, kind) == packets(clip, kind), kind
    with av.open(str(output)) as container:
        assert len(container.streams.video) == (1 if "video" in kinds else 0)
    if preset == "m4a":
        boxes = top_level_boxes(output)
        assert boxes.index("moov") < boxes.index("mdat")


def test_a_sound_preset_given_another_codec_re_encodes(server: LiveServer, media: Path) -> None:
    clip = make_clip(media / "for-mp3.m4a", video=False)
    job = convert(server, clip, preset="mp3")
    assert job["options"]["audio_codec"] == "mp3" and job["result"]["remuxed"] is False
    assert job["result"]["audio"]["codec"] == "mp3"


# -- the decision's rules, on probes --------------------------------------------------


def picture(**fields: Any) -> dict[str, Any]:
    """A 1280x720 H.264 High 3.0 yuv420p stream's VideoInfo fields, with these changes."""
    defaults = {"codec": "h264", "width": 1280, "height": 720, "fps": 30.0}
    values = {**defaults, "pix_fmt": "yuv420p", "rotation": 0, "profile": "High", "level": 30}
    return {**values, **fields}


def probe_of(
    *,
    demuxer: str = "mov,mp4,m4a,3gp,3g2,mj2",
    codec: str = "h264",
    profile: str | None = "High",
    level: int | None = 30,
    pix_fmt: str = "yuv420p",
    audio: str | None = "aac",
    channels: int = 2,
    video: VideoInfo | None = None,
) -> MediaInfo:
    return MediaInfo(
        container="mp4",
        format_name=demuxer,
        duration_seconds=10.0,
        video=video
        or VideoInfo(**picture(codec=codec, pix_fmt=pix_fmt, profile=profile, level=level)),
        audio=None if audio is None else AudioInfo(audio, channels, 48000),
    )


@pytest.mark.parametrize(
    ("options", "info", "remux"),
    [
        ({}, probe_of(), True),
        ({}, probe_of(profile="Constrained Baseline", level=52), True),
        ({}, probe_of(level=60), False),  # above 5.2
        ({}, probe_of(level=None), False),
        ({}, probe_of(profile="Baseline"), False),  # FMO/ASO: not for browsers
        ({}, probe_of(profile="High 4:2:2"), False),
        ({}, probe_of(audio=None), True),
        ({}, probe_of(audio="ac3"), False),
        ({}, probe_of(demuxer="avi"), False),
        ({}, probe_of(demuxer="mpegts"), True),
        ({"audio_codec": "none"}, probe_of(audio="ac3"), True),
        ({"format": "mkv"}, probe_of(), True),
        ({"preset": "mp4-h265"}, probe_of(codec="hevc", profile="Main"), True),
        ({"preset": "mp4-h265"}, probe_of(codec="hevc", profile="Main 10"), False),
        ({"preset": "webm-vp9"}, probe_of(codec="vp9", profile="Profile 0", audio="vorbis"), True),
        (
            {"preset": "webm-vp9"},
            probe_of(codec="vp9", profile="Profile 0", audio="opus", channels=6),
            False,
        ),
        ({"preset": "mp4-h264-720p"}, probe_of(), True),  # already 720 on its short side
        ({"preset": "gif"}, probe_of(), False),
        ({"preset": "hls"}, probe_of(), False),
        ({"width": "1280", "height": "720"}, probe_of(), True),  # no size change
        ({"poster": "true", "storyboard": "true"}, probe_of(), True),
    ],
)
def test_the_decision(options: dict[str, str], info: MediaInfo, remux: bool) -> None:
    decision = decide_remux(resolve_options(options), info, sent=options.keys())
    assert decision.remux is remux, decision.reason
    assert decision.options.video_codec == (
        "copy" if remux else resolve_options(options).video_codec
    )


def test_explicit_crf_at_the_preset_value_counts_only_when_sent() -> None:
    # A source_url job is decided by the worker, which knows the options only as resolved.
    options = resolve_options({"crf": "23"})
    assert decide_remux(options, probe_of(), sent={"crf"}).remux is False
    assert decide_remux(options, probe_of()).remux is True
    assert decide_remux(resolve_options({"crf": "24"}), probe_of()).remux is False


def test_the_picture_overlay_and_sound_options_force_a_re_encode() -> None:
    plain = resolve_options({})
    assert decide_remux(plain, probe_of()).remux is True
    for name, value in (("crop", "640:360:0:0"), ("loudness", "ebu")):
        decision = decide_remux(plain.model_copy(update={name: value}), probe_of())
        assert decision.remux is False and name in decision.reason
    burned = plain.model_copy(update={"subtitles": True, "subtitles_mode": "burn"})
    assert "subtitles" in decide_remux(burned, probe_of()).reason
    soft = plain.model_copy(update={"subtitles": True, "subtitles_mode": "track"})
    assert decide_remux(soft, probe_of()).remux is True
    assert {"crop", "rotate", "flip", "watermark", "loudness", "target_vmaf"} <= set(
        REENCODE_OPTIONS
    )

    interlaced = probe_of(video=VideoInfo(**picture(interlaced=True)))
    assert decide_remux(plain, interlaced).remux is False
    assert decide_remux(plain.model_copy(update={"deinterlace": "off"}), interlaced).remux is True


def test_a_remuxed_jobs_options_are_valid_options_again() -> None:
    """A client may send a job's resolved options back as they are."""
    decision = decide_remux(
        resolve_options({"width": "1280", "poster": "true", "start": "2", "trim": "fast"}),
        probe_of(),
        sent={"width", "poster", "start", "trim"},
    )
    assert decision.remux
    values = decision.options.model_dump()
    sent = {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name in OPTION_FIELDS
        if (value := values[name]) is not None
    }
    assert resolve_options(sent) == decision.options


def test_transcode_always_cannot_copy() -> None:
    for codec in ("video_codec", "audio_codec"):
        with pytest.raises(InvalidOption) as raised:
            resolve_options({"transcode": "always", codec: "copy"})
        assert [e["field"] for e in raised.value.errors] == ["transcode"]
    assert resolve_options({"transcode": "ALWAYS"}).transcode == "always"
    assert resolve_options({}).trim == "exact"

"""Probing, the ffmpeg command and the ffmpeg runner, with the real ffmpeg on tiny clips."""

from __future__ import annotations

import ast
import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import psutil
import pytest

import vidq.media
from vidq.config import Settings
from vidq.errors import UnsupportedMedia
from vidq.jobs.options import ResolvedOptions, output_extension, resolve_options
from vidq.jobs.presets import PRESETS
from vidq.media.command import (
    build_command,
    expected_output_seconds,
    job_timeout_seconds,
    output_size,
)
from vidq.media.ffmpeg import FFmpegResult, describe_failure, run_ffmpeg
from vidq.media.info import MediaInfo, VideoInfo
from vidq.media.probe import close_prober, probe

from .helpers import media_settings
from .media_clips import (
    FFMPEG,
    make_clip,
    make_concat_script,
    make_hls_playlist,
    make_random_bytes,
    make_text_file,
    make_truncated,
    make_with_cover_art,
    make_y4m_bomb,
)

MIB = 1024**2
CODEC_NAMES = {
    "h264": "h264",
    "h265": "hevc",
    "vp9": "vp9",
    "av1": "av1",
    "gif": "gif",
    "aac": "aac",
    "opus": "opus",
    "mp3": "mp3",
}


pytestmark = pytest.mark.usefixtures("no_spare_prober")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return media_settings(tmp_path)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of clips shared by this module's tests (made once: they only get read)."""
    folder = tmp_path_factory.mktemp("samples")
    make_clip(folder / "av.mp4", seconds=2.0)
    make_clip(folder / "silent.mp4", audio=False)
    make_clip(folder / "sound.m4a", video=False)
    make_clip(folder / "odd444.mkv", size=(161, 91), pix_fmt="yuv444p", audio=False)
    make_clip(folder / "ten-bit.mkv", pix_fmt="yuv420p10le", audio=False)
    make_clip(folder / "rotated.mp4", rotation=90)
    make_clip(folder / "surround.mkv", video=False, channels=6)
    return folder


async def convert(
    source: Path, options: ResolvedOptions, settings: Settings, out_dir: Path
) -> tuple[MediaInfo, list[float]]:
    """Convert with the real pipeline; the probed output and the progress reported."""
    info = await probe(source, settings)
    output = out_dir / f"{source.stem}-out.{output_extension(options)}"
    argv = build_command(FFMPEG, source, output, options, info, settings)
    progress: list[float] = []
    result = await run_ffmpeg(
        argv,
        settings=settings,
        on_progress=progress.append,
        stop=asyncio.Event(),
        timeout_seconds=60,
        stall_seconds=30,
        max_output_bytes=100 * MIB,
    )
    assert result.returncode == 0 and result.stop_reason is None, describe_failure(result)
    return await probe(output, settings), progress


def video_stream_profile(path: Path) -> str | None:
    with av.open(str(path)) as container:
        profile: str | None = container.streams.video[0].profile
        return profile


# -- every preset on a real clip ------------------------------------------------------------


# Packages and stills are made by their own ffmpeg runs (tests/test_packages.py).
SINGLE_FILE_PRESETS = [
    name for name, p in PRESETS.items() if p.options["format"] not in ("hls", "dash", "cmaf", "jpg")
]


def test_the_presets_not_converted_here_are_the_packages_and_the_still() -> None:
    assert sorted(set(PRESETS) - set(SINGLE_FILE_PRESETS)) == ["cmaf", "dash", "hls", "poster"]


@pytest.mark.parametrize("preset", SINGLE_FILE_PRESETS)
async def test_every_preset_converts(
    preset: str, samples: Path, tmp_path: Path, settings: Settings
) -> None:
    options = resolve_options({"preset": preset})
    out, progress = await convert(samples / "av.mp4", options, settings, tmp_path)
    if options.video_codec == "none":
        assert out.video is None
    else:
        assert out.video is not None
        assert out.video.codec == CODEC_NAMES[options.video_codec]
        assert (out.video.width, out.video.height) == (160, 90)  # never upscaled
        if options.video_codec != "gif":
            assert out.video.pix_fmt == "yuv420p"
    if options.audio_codec == "none":
        assert out.audio is None
    else:
        assert out.audio is not None and out.audio.codec == CODEC_NAMES[options.audio_codec]
    assert out.duration_seconds == pytest.approx(2.0, abs=0.15)
    assert progress and progress[-1] == pytest.approx(2.0, abs=0.15)
    assert progress == sorted(progress)
    if options.video_codec == "h264":
        assert video_stream_profile(tmp_path / f"av-out.{options.format}") == "High"


# -- scaling ----------------------------------------------------------------------------------


def _video(width: int, height: int) -> VideoInfo:
    return VideoInfo("h264", width, height, 25.0, "yuv420p", 0)


@pytest.mark.parametrize(
    ("source", "raw", "expected"),
    [
        ((160, 90), {}, (160, 90)),
        ((161, 91), {}, (160, 90)),
        ((1920, 1080), {"height": "720"}, (1280, 720)),
        ((1920, 1080), {"width": "640"}, (640, 360)),
        ((1920, 1080), {"width": "639"}, (638, 360)),
        ((160, 90), {"height": "720"}, (160, 90)),
        ((160, 90), {"height": "720", "upscale": "true"}, (1280, 720)),
        ((1920, 1080), {"width": "1000", "height": "1000"}, (1000, 562)),
        ((1080, 1920), {"width": "1280", "height": "720"}, (406, 720)),
        ((160, 90), {"width": "1280", "height": "1280"}, (160, 90)),
        # Upscaling stops at 8K, either way up: 7680 on the long side, 4320 on the short one.
        ((90, 160), {"width": "7680", "upscale": "true"}, (4320, 7680)),
        ((160, 90), {"width": "7680", "upscale": "true"}, (7680, 4320)),
        ((1, 1), {}, (2, 2)),
    ],
)
def test_output_size(
    source: tuple[int, int], raw: dict[str, str], expected: tuple[int, int]
) -> None:
    size = output_size(_video(*source), resolve_options(raw))
    assert size == expected
    assert size[0] % 2 == 0 and size[1] % 2 == 0


async def test_downscale_keeps_aspect_and_even_sizes(
    samples: Path, tmp_path: Path, settings: Settings
) -> None:
    out, _ = await convert(
        samples / "av.mp4", resolve_options({"width": "101"}), settings, tmp_path
    )
    assert out.video is not None and (out.video.width, out.video.height) == (100, 56)


async def test_upscale_only_when_asked(samples: Path, tmp_path: Path, settings: Settings) -> None:
    out, _ = await convert(
        samples / "silent.mp4",
        resolve_options({"height": "180", "upscale": "true", "preset": "mp4-h264"}),
        settings,
        tmp_path,
    )
    assert out.video is not None and (out.video.width, out.video.height) == (320, 180)


async def test_odd_sized_444_input_becomes_even_yuv420p_high(
    samples: Path, tmp_path: Path, settings: Settings
) -> None:
    source = await probe(samples / "odd444.mkv", settings)
    assert source.video is not None and source.video.pix_fmt == "yuv444p"
    assert (source.video.width, source.video.height) == (161, 91)
    out, _ = await convert(samples / "odd444.mkv", resolve_options({}), settings, tmp_path)
    assert out.video is not None and out.audio is None
    assert (out.video.width, out.video.height, out.video.pix_fmt) == (160, 90, "yuv420p")
    assert video_stream_profile(tmp_path / "odd444-out.mp4") == "High"


async def test_ten_bit_input_becomes_8_bit_high(
    samples: Path, tmp_path: Path, settings: Settings
) -> None:
    source = await probe(samples / "ten-bit.mkv", settings)
    assert source.video is not None and source.video.pix_fmt == "yuv420p10le"
    out, _ = await convert(samples / "ten-bit.mkv", resolve_options({}), settings, tmp_path)
    assert out.video is not None and out.video.pix_fmt == "yuv420p"
    assert video_stream_profile(tmp_path / "ten-bit-out.mp4") == "High"


async def test_rotated_input_is_turned_upright(
    samples: Path, tmp_path: Path, settings: Settings
) -> None:
    source = await probe(samples / "rotated.mp4", settings)
    assert source.video is not None
    assert (source.video.width, source.video.height, source.video.rotation) == (90, 160, 90)
    out, _ = await convert(
        samples / "rotated.mp4", resolve_options({"height": "80"}), settings, tmp_path
    )
    assert out.video is not None
    assert (out.video.width, out.video.height, out.video.rotation) == (46, 80, 0)


# -- trimming, audio-only and silent inputs, copy ---------------------------------------------


async def test_start_and_end_trim_the_output(
    samples: Path, tmp_path: Path, settings: Settings
) -> None:
    options = resolve_options({"start": "0.5", "end": "1.5"})
    info = await probe(samples / "av.mp4", settings)
    assert expected_output_seconds(options, info) == pytest.approx(1.0)
    out, progress = await convert(samples / "av.mp4", options, settings, tmp_path)
    assert out.duration_seconds == pytest.approx(1.0, abs=0.1)
    assert progress[-1] == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize(
    ("preset", "audio_codec"),
    [("mp3", "mp3"), ("m4a", "aac"), ("mp4-h264", "aac"), ("webm-vp9", "opus")],
)
async def test_audio_only_input(
    preset: str, audio_codec: str, samples: Path, tmp_path: Path, settings: Settings
) -> None:
    out, _ = await convert(
        samples / "sound.m4a", resolve_options({"preset": preset}), settings, tmp_path
    )
    assert out.video is None
    assert out.audio is not None and out.audio.codec == audio_codec
    assert out.duration_seconds == pytest.approx(1.0, abs=0.1)


async def test_input_without_audio(samples: Path, tmp_path: Path, settings: Settings) -> None:
    out, _ = await convert(samples / "silent.mp4", resolve_options({}), settings, tmp_path)
    assert out.audio is None and out.video is not None and out.video.codec == "h264"


@pytest.mark.parametrize("preset", ["mp3", "webm-vp9"])
async def test_surround_sound_is_mixed_down_where_needed(
    preset: str, samples: Path, tmp_path: Path, settings: Settings
) -> None:
    out, _ = await convert(
        samples / "surround.mkv", resolve_options({"preset": preset}), settings, tmp_path
    )
    assert out.audio is not None and out.audio.channels == 2


async def test_stream_copy_into_mkv(samples: Path, tmp_path: Path, settings: Settings) -> None:
    options = resolve_options({"format": "mkv", "video_codec": "copy", "audio_codec": "copy"})
    out, _ = await convert(samples / "av.mp4", options, settings, tmp_path)
    assert out.container == "matroska"
    assert out.video is not None and out.video.codec == "h264"
    assert out.audio is not None and out.audio.codec == "aac"


def test_command_is_safe_and_complete(samples: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ffmpeg_threads=3)
    info = MediaInfo("mp4", "mov,mp4,m4a,3gp,3g2,mj2", 10.0, _video(1920, 1080), None)
    argv = build_command(
        "ffmpeg",
        tmp_path / "in",
        tmp_path / "out.mp4",
        resolve_options({"start": "2", "end": "5", "fps": "24"}),
        info,
        settings,
    )
    joined = " ".join(argv)
    assert argv[argv.index("-protocol_whitelist") + 1] == "file"
    assert argv.index("-f") < argv.index("-ss") < argv.index("-i")
    assert argv[argv.index("-f") + 1] == "mov"
    assert argv[argv.index("-t") + 1] == "3"
    assert "-map 0:V:0" in joined and "-an" in joined and "0:a" not in joined
    assert "-profile:v high -pix_fmt yuv420p -crf 23" in joined
    assert "scale=1920:1080:flags=bicubic,setsar=1,fps=24,format=yuv420p" in joined
    assert "-movflags +faststart" in joined and "-threads 3" in joined
    assert argv[-1] == "file:" + str((tmp_path / "out.mp4").absolute())
    hostile = MediaInfo("mp4", "hls", 10.0, _video(16, 16), None)
    with pytest.raises(ValueError, match="not allowed"):
        build_command(
            "ffmpeg", tmp_path / "in", tmp_path / "out.mp4", resolve_options({}), hostile, settings
        )


def test_timeouts_follow_the_duration(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, job_timeout_min_seconds=600, job_timeout_factor=10)
    short = MediaInfo("mp4", "mov", 5.0, None, None)
    long = MediaInfo("mp4", "mov", 3600.0, None, None)
    unknown = MediaInfo("mp4", "mov", None, None, None)
    assert job_timeout_seconds(short, settings) == 600
    assert job_timeout_seconds(long, settings) == 36000
    assert job_timeout_seconds(unknown, settings) == 600
    assert expected_output_seconds(resolve_options({"end": "99"}), short) == 5.0
    assert expected_output_seconds(resolve_options({}), unknown) is None


def test_the_command_reads_plain_fields(tmp_path: Path) -> None:
    """build_command takes any object with the option fields, not only ResolvedOptions."""
    options = resolve_options({"preset": "webm-vp9", "height": "360", "end": "4"})
    plain = SimpleNamespace(**options.model_dump())
    info = MediaInfo("mp4", "mov,mp4,m4a,3gp,3g2,mj2", 10.0, _video(1920, 1080), None)
    settings = Settings(data_dir=tmp_path)
    argv = build_command("ffmpeg", tmp_path / "in", tmp_path / "out", options, info, settings)
    assert build_command("ffmpeg", tmp_path / "in", tmp_path / "out", plain, info, settings) == argv


def test_media_does_not_import_jobs() -> None:
    """media knows formats, jobs knows requests: jobs imports media, never the other way."""
    for path in Path(vidq.media.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            assert not any(name.startswith("vidq.jobs") for name in names), path.name


# -- probing ------------------------------------------------------------------------------------


async def test_probe_reports_the_streams(samples: Path, settings: Settings) -> None:
    info = await probe(samples / "av.mp4", settings)
    assert info.container == "mp4" and info.demuxer == "mov"
    assert info.duration_seconds == pytest.approx(2.0, abs=0.05)
    assert info.to_api() == {
        "container": "mp4",
        "duration_seconds": info.duration_seconds,
        "video": {
            "codec": "h264",
            "width": 160,
            "height": 90,
            "fps": 25.0,
            "bit_depth": 8,
            "color_primaries": None,
            "color_transfer": None,
            "color_space": None,
            "hdr": None,
            "interlaced": False,
        },
        "audio": {"codec": "aac", "channels": 1, "sample_rate": 48000},
    }
    assert MediaInfo.from_json(info.to_json()) == info
    audio_only = await probe(samples / "sound.m4a", settings)
    assert audio_only.container == "m4a" and audio_only.video is None
    assert MediaInfo.from_json(audio_only.to_json()) == audio_only


async def test_cover_art_is_not_video(tmp_path: Path, settings: Settings) -> None:
    info = await probe(make_with_cover_art(tmp_path / "song.mp3"), settings)
    assert info.video is None and info.audio is not None and info.audio.codec == "mp3"


Maker = Callable[[Path], Path]


def _truncated(path: Path) -> Path:
    whole = make_clip(path.with_name("whole.mp4"), seconds=2.0)
    return make_truncated(whole, path)


@pytest.mark.parametrize(
    ("name", "make", "fragment"),
    [
        ("random.mp4", make_random_bytes, "not a video or audio file"),
        ("empty.mp4", lambda p: (p.touch(), p)[1], "empty"),
        ("notes.txt", make_text_file, "not a video or audio file"),
        ("playlist.m3u8", make_hls_playlist, "not a video or audio file"),
        ("playlist.mp4", make_hls_playlist, "not a video or audio file"),
        ("list.ffconcat", make_concat_script, "not a video or audio file"),
        ("concat.mp4", make_concat_script, "not a video or audio file"),
        ("bomb.y4m", make_y4m_bomb, "not a video or audio file"),
        ("truncated.mp4", _truncated, "not a video or audio file"),
    ],
)
async def test_probe_refuses(
    name: str, make: Maker, fragment: str, tmp_path: Path, settings: Settings
) -> None:
    path = make(tmp_path / name)
    with pytest.raises(UnsupportedMedia) as caught:
        await probe(path, settings)
    assert fragment in caught.value.detail
    assert str(tmp_path) not in caught.value.detail and name not in caught.value.detail


async def test_probe_refuses_a_video_over_the_size_limit(samples: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, max_input_width=128, max_input_height=128)
    with pytest.raises(UnsupportedMedia, match=r"160x90 pixels; .* at most 128x128"):
        await probe(samples / "av.mp4", settings)


async def test_size_limits_apply_to_the_displayed_size(samples: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, max_input_width=100, max_input_height=200)
    upright = await probe(samples / "rotated.mp4", settings)  # stored 160x90, shown 90x160
    assert upright.video is not None and upright.video.width == 90
    with pytest.raises(UnsupportedMedia, match=r"160x90 pixels; .* at most 100x200"):
        await probe(samples / "av.mp4", settings)


@pytest.mark.parametrize(
    ("name", "kwargs", "container", "video", "audio"),
    [
        ("a.webm", {}, "webm", "vp9", "opus"),
        ("a.mkv", {}, "matroska", "h264", "aac"),
        ("a.mov", {}, "mov", "h264", "aac"),
        ("a.mp3", {"video": False}, "mp3", None, "mp3"),
        ("a.wav", {"video": False}, "wav", None, "pcm_s16le"),
        ("a.ogg", {"video": False}, "ogg", None, "opus"),
        ("a.gif", {"audio": False, "video_codec": "gif", "pix_fmt": "rgb8"}, "gif", "gif", None),
    ],
)
async def test_probe_accepts_real_containers(
    name: str,
    kwargs: dict[str, Any],
    container: str,
    video: str | None,
    audio: str | None,
    tmp_path: Path,
    settings: Settings,
) -> None:
    info = await probe(make_clip(tmp_path / name, **kwargs), settings)
    assert info.container == container
    assert (info.video and info.video.codec, info.audio and info.audio.codec) == (video, audio)
    assert info.duration_seconds == pytest.approx(1.0, abs=0.1)


async def test_probe_refuses_a_file_over_the_duration_limit(samples: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, max_input_duration_seconds=1.5)
    with pytest.raises(UnsupportedMedia, match=r"lasts 0:02; .* at most 0:02"):
        await probe(samples / "av.mp4", settings)


async def test_probe_times_out(samples: Path, tmp_path: Path) -> None:
    # A warm prober reads this clip in ~0.01 s: 1 ms is too short even for it.
    settings = Settings(data_dir=tmp_path, probe_timeout_seconds=0.001)
    started = time.monotonic()
    with pytest.raises(UnsupportedMedia, match=r"longer than 0\.001 s"):
        await probe(samples / "av.mp4", settings)
    assert time.monotonic() - started < 2
    close_prober()  # the spare started for the next probe; the timed-out child is gone
    assert not _children()


async def test_a_crashing_prober_costs_only_the_upload(samples: Path, tmp_path: Path) -> None:
    # Too little address space for Python to even start: the child dies, the server does not.
    settings = Settings(data_dir=tmp_path, ffmpeg_memory_bytes=16 * MIB)
    with pytest.raises(UnsupportedMedia, match="prober failed"):
        await probe(samples / "av.mp4", settings)


# -- the ffmpeg runner -------------------------------------------------------------------------


def _children() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


def _endless(tmp_path: Path, *, rate: str = "25") -> list[str]:
    """An ffmpeg that encodes a test pattern in real time until stopped."""
    return [
        FFMPEG,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "error",
        "-progress",
        "pipe:1",
        "-stats_period",
        "0.1",
        "-re",
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size=64x64:rate={rate}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-y",
        str(tmp_path / "endless.mkv"),
    ]


async def _run(
    argv: list[str],
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    timeout_seconds: float = 30,
    stall_seconds: float = 30,
    max_output_bytes: int = 100 * MIB,
    on_progress: Callable[[float], None] = lambda _: None,
) -> FFmpegResult:
    return await run_ffmpeg(
        argv,
        settings=settings,
        on_progress=on_progress,
        stop=stop or asyncio.Event(),
        timeout_seconds=timeout_seconds,
        stall_seconds=stall_seconds,
        max_output_bytes=max_output_bytes,
    )


async def test_progress_rises_and_the_run_ends(tmp_path: Path, settings: Settings) -> None:
    argv = _endless(tmp_path)
    argv[argv.index("-y") : argv.index("-y")] = ["-t", "1.2"]
    progress: list[float] = []
    result = await _run(argv, settings, on_progress=progress.append)
    assert (result.returncode, result.stop_reason) == (0, None)
    assert len(progress) >= 3
    assert progress == sorted(set(progress))
    assert progress[-1] == pytest.approx(1.2, abs=0.1)
    assert not _children()


async def test_stop_ends_the_process_within_two_seconds(tmp_path: Path, settings: Settings) -> None:
    stop = asyncio.Event()
    pids: list[int] = []

    def on_progress(seconds: float) -> None:
        pids.extend(p.pid for p in _children())
        if seconds >= 0.3:
            stop.set()

    task = asyncio.create_task(
        _run(_endless(tmp_path), settings, stop=stop, on_progress=on_progress)
    )
    await stop.wait()
    stopped_at = time.monotonic()
    result = await task
    assert time.monotonic() - stopped_at < 2
    assert result.stop_reason == "stopped"
    assert describe_failure(result) == "The conversion was stopped."
    assert pids and not any(psutil.pid_exists(pid) for pid in pids)


def test_a_run_standing_for_others_keeps_its_worded_message() -> None:
    # A chunked job's step fails with the message its failed part already wrote for users:
    # said once, not wrapped again as an ffmpeg exit status.
    part_said = "The conversion failed: ffmpeg failed (exit status 1): Invalid data."
    result = FFmpegResult(1, "", None, message=part_said)
    assert describe_failure(result) == part_said
    assert describe_failure(FFmpegResult(1, "Invalid data.", None)) == (
        "The conversion failed: ffmpeg failed (exit status 1): Invalid data."
    )


async def test_timeout(tmp_path: Path, settings: Settings) -> None:
    started = time.monotonic()
    result = await _run(_endless(tmp_path), settings, timeout_seconds=0.5)
    assert result.stop_reason == "timeout"
    assert 0.5 <= time.monotonic() - started < 2.5
    assert "time limit" in describe_failure(result)
    assert not _children()


async def test_stall_is_detected_and_a_deaf_process_is_killed(
    tmp_path: Path, settings: Settings
) -> None:
    # A FIFO nobody writes to: ffmpeg blocks in open() forever, ignoring SIGTERM there.
    fifo = tmp_path / "never.fifo"
    os.mkfifo(fifo)
    argv = [FFMPEG, "-nostdin", "-progress", "pipe:1", "-i", str(fifo), "-f", "null", "-"]
    started = time.monotonic()
    result = await _run(argv, settings, stall_seconds=0.5)
    assert result.stop_reason == "stalled"
    assert time.monotonic() - started < 3
    assert "no progress" in describe_failure(result)
    assert not _children()


async def test_cancelling_the_runner_kills_ffmpeg(tmp_path: Path, settings: Settings) -> None:
    started = asyncio.Event()
    task = asyncio.create_task(
        _run(_endless(tmp_path), settings, on_progress=lambda _: started.set())
    )
    await started.wait()
    pids = [p.pid for p in _children()]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pids and not any(psutil.pid_exists(pid) for pid in pids)


async def test_output_size_limit(tmp_path: Path, settings: Settings) -> None:
    argv = _endless(tmp_path)
    argv[argv.index("-re")] = "-nostats"  # as fast as possible
    result = await _run(argv, settings, max_output_bytes=20_000)
    assert result.returncode is not None and result.returncode != 0
    assert "size limit" in describe_failure(result)
    assert (tmp_path / "endless.mkv").stat().st_size <= 20_000


async def test_failure_message_hides_server_paths(tmp_path: Path, settings: Settings) -> None:
    missing = tmp_path / "secret-dir" / "input.mp4"
    output = tmp_path / "out.mp4"
    result = await _run(
        [FFMPEG, "-hide_banner", "-nostdin", "-i", "file:" + str(missing), str(output)], settings
    )
    assert result.returncode not in (0, None) and result.stop_reason is None
    message = describe_failure(result, missing, output)
    assert "input.mp4" in message and "No such file" in message
    assert str(tmp_path) not in message and "secret-dir" not in message

"""Loudness normalisation, quality reports and target quality, end to end: a real server,
real ffmpeg on small generated clips, and the outputs measured again by the test itself."""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vidq.errors import InvalidOption
from vidq.jobs.input_checks import check_against_input
from vidq.jobs.options import resolve_options
from vidq.media.info import AudioInfo, MediaInfo, VideoInfo
from vidq.media.target_quality import CrfSearch, sample_spans
from vidq.worker.measures import add_measure_steps
from vidq.worker.outputs import plan_outputs

from .conftest import LiveServer, make_settings, module_server
from .helpers import (
    api_client,
    assert_problem,
    convert_completed,
    post_convert,
    submit_job,
    wait_done,
)
from .media_clips import FFMPEG, ffmpeg, make_clip

TARGETS = {"ebu": -23.0, "streaming": -14.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module, with two workers: the jobs here are independent."""
    with module_server(tmp_path_factory.mktemp("server"), workers=2) as live:
        yield live


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sound-quality")


def _sound(path: Path, expression: str, seconds: float = 4.0) -> Path:
    """A mono 48 kHz WAV of `expression` (aevalsrc), with a small picture beside it."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"aevalsrc=exprs='{expression}':sample_rate=48000:duration={seconds}",
        "-c:a",
        "pcm_s16le",
        str(path),
    )
    return path


def _picture(path: Path, source: str, seconds: float = 2.0) -> Path:
    """A lossless H.264 clip of a lavfi source (the reference is exactly what was made)."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"{source},trim=duration={seconds},format=yuv420p",
        "-c:v",
        "libx264",
        "-qp",
        "0",
        "-preset",
        "veryfast",
        str(path),
    )
    return path


_SCAN = ("-af", "ebur128=peak=true:framelog=quiet", "-f", "null", "-")


def _ebur128(path: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP) of a file, measured by the test."""
    done = subprocess.run(
        [FFMPEG, "-nostdin", "-hide_banner", "-i", str(path), "-map", "0:a:0", *_SCAN],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = done.stderr[done.stderr.rindex("Summary:") :]
    integrated = re.search(r"I:\s*(-?[\d.]+) LUFS", summary)
    peak = re.search(r"Peak:\s*(-?[\d.]+|-inf) dBFS", summary)
    assert integrated and peak, summary
    return float(integrated[1]), float(peak[1])


def _vmaf(distorted: Path, reference: Path, tmp: Path) -> float:
    """Mean VMAF (vmaf_v0.6.1) of `distorted` against `reference`, measured by the test."""
    log = tmp / f"{distorted.stem}-check.json"
    graph = (
        "[0:v]setpts=PTS-STARTPTS[d];[1:v]setpts=PTS-STARTPTS[r];"
        f"[d][r]libvmaf=model=version=vmaf_v0.6.1:log_fmt=json:log_path={log}"
    )
    ffmpeg("-i", str(distorted), "-i", str(reference), "-lavfi", graph, "-f", "null", "-")
    return float(json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"])


def _run(server: LiveServer, path: Path, **fields: str) -> dict[str, Any]:
    with server.client() as client:
        done = convert_completed(client, path, timeout=180, **fields)
    result: dict[str, Any] = done["result"]
    return result


def _download(result: dict[str, Any], target: Path) -> Path:
    target.write_bytes(httpx.get(result["download_url"]).content)
    return target


# -- loudness --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quiet(media_dir: Path) -> Path:
    """About -47 LUFS: a tone whose level swells and falls (so it has a loudness range)."""
    return _sound(media_dir / "quiet.wav", "0.006*(1+0.5*sin(2*PI*t/2))*sin(440*2*PI*t)")


@pytest.fixture(scope="module")
def loud(media_dir: Path) -> Path:
    """About -5 LUFS: the same swell near full scale."""
    return _sound(media_dir / "loud.wav", "0.6*(1+0.5*sin(2*PI*t/2))*sin(440*2*PI*t)")


@pytest.fixture(scope="module")
def spiky(media_dir: Path) -> Path:
    """A quiet tone with full-scale clicks: a gain that reaches the target would push its
    peaks far over -1 dBTP, so loudnorm must work dynamically."""
    return _sound(
        media_dir / "spiky.wav",
        "0.01*sin(440*2*PI*t)+0.95*lt(mod(t,1),0.002)",
    )


@pytest.mark.parametrize(("clip", "level"), [("quiet", "ebu"), ("loud", "streaming")])
def test_loudness_reaches_its_target_linearly(
    server: LiveServer, request: pytest.FixtureRequest, clip: str, level: str, tmp_path: Path
) -> None:
    source: Path = request.getfixturevalue(clip)
    result = _run(server, source, preset="m4a", loudness=level)
    report = result["loudness"]
    assert report["mode"] == "linear"
    before, _ = _ebur128(source)
    after, peak = _ebur128(_download(result, tmp_path / "out.m4a"))
    target = TARGETS[level]
    assert abs(after - target) <= 1.0
    assert peak <= -1.0 + 0.5
    # What the job reports is what was measured, before and after.
    assert abs(report["input"]["integrated_lufs"] - before) <= 0.2
    assert abs(report["output"]["integrated_lufs"] - after) <= 0.2
    assert report["output"]["true_peak_dbtp"] <= -0.5
    assert set(report["input"]) == {"integrated_lufs", "true_peak_dbtp"}


def test_loudness_falls_back_to_dynamic_when_the_peak_forbids_a_gain(
    server: LiveServer, spiky: Path, tmp_path: Path
) -> None:
    result = _run(server, spiky, preset="m4a", loudness="ebu")
    report = result["loudness"]
    assert report["mode"] == "dynamic"
    assert report["input"]["true_peak_dbtp"] > -1.0
    after, peak = _ebur128(_download(result, tmp_path / "out.m4a"))
    assert abs(report["output"]["integrated_lufs"] - after) <= 0.2
    assert peak <= -1.0 + 0.5  # the limiter held the peaks


# -- quality report --------------------------------------------------------------------


@pytest.fixture(scope="module")
def moving(media_dir: Path) -> Path:
    return _picture(media_dir / "moving.mp4", "mandelbrot=s=192x108:r=25")


@pytest.fixture(scope="module")
def static(media_dir: Path) -> Path:
    return _picture(
        media_dir / "static.mp4",
        "testsrc2=s=192x108:r=25:d=1,trim=end_frame=1,loop=loop=-1:size=1,setpts=N/25/TB",
    )


@pytest.fixture(scope="module")
def noise(media_dir: Path) -> Path:
    return _picture(media_dir / "noise.mp4", "testsrc2=s=192x108:r=25,noise=alls=30:allf=t+u")


def test_quality_report_ranks_crfs_and_matches_an_independent_measurement(
    server: LiveServer, moving: Path, tmp_path: Path
) -> None:
    good = _run(server, moving, crf="18", quality_report="true")
    poor = _run(server, moving, crf="35", quality_report="true")
    for result in (good, poor):
        quality = result["quality"]
        assert set(quality) == {"vmaf", "psnr", "ssim", "model"}
        assert quality["model"] == "vmaf_v0.6.1"
        vmaf = quality["vmaf"]
        assert 0 <= vmaf["min"] <= vmaf["p5"] <= vmaf["mean"] <= 100
        assert 0 < quality["ssim"] <= 1 and quality["psnr"] > 15
    assert good["quality"]["vmaf"]["mean"] > poor["quality"]["vmaf"]["mean"] + 5
    assert good["quality"]["psnr"] > poor["quality"]["psnr"]
    assert good["quality"]["ssim"] > poor["quality"]["ssim"]
    measured = _vmaf(_download(poor, tmp_path / "poor.mp4"), moving, tmp_path)
    assert abs(poor["quality"]["vmaf"]["mean"] - measured) <= 0.5


def test_the_reference_is_the_input_as_the_job_shows_it(
    server: LiveServer, media_dir: Path
) -> None:
    """A rotated phone clip, cut to a span and brought to another frame rate, is judged
    against that span of the input, upright, at that rate: a good encode scores well."""
    rotated = make_clip(
        media_dir / "rotated.mp4", seconds=2, size=(192, 108), rotation=90, audio=False
    )
    result = _run(
        server, rotated, crf="18", fps="12", start="0.5", end="1.5", quality_report="true"
    )
    assert (result["video"]["width"], result["video"]["height"]) == (108, 192)
    assert result["quality"]["vmaf"]["mean"] > 85
    assert result["quality"]["vmaf"]["min"] > 70


def test_a_package_is_scored_and_its_sound_normalised(
    server: LiveServer, moving: Path, quiet: Path, tmp_path: Path
) -> None:
    both = tmp_path / "both.mp4"
    ffmpeg(
        "-i", str(moving), "-i", str(quiet), "-c:v", "copy", "-c:a", "aac", "-shortest", str(both)
    )
    result = _run(server, both, format="hls", quality_report="true", loudness="ebu")
    assert result["quality"]["vmaf"]["mean"] > 50
    assert abs(result["loudness"]["output"]["integrated_lufs"] - TARGETS["ebu"]) <= 1.0
    assert result["quality"]["model"] == "vmaf_v0.6.1"
    assert result["loudness"]["mode"] in ("linear", "dynamic")
    # The measuring runs leave nothing of theirs among the package's files.
    assert all(f["role"] in ("manifest", "playlist", "init", "segment") for f in result["files"])


# -- target quality --------------------------------------------------------------------


def test_target_vmaf_lands_near_its_target_on_easy_and_hard_content(
    server: LiveServer, static: Path, moving: Path, noise: Path, tmp_path: Path
) -> None:
    with server.client() as client:
        ids = {
            name: submit_job(client, clip, target_vmaf="93")["id"]
            for name, clip in (("static", static), ("moving", moving), ("noise", noise))
        }
        fixed = submit_job(client, static)["id"]  # the preset's own CRF, 23
        done = {name: wait_done(client, job_id, timeout=240) for name, job_id in ids.items()}
        plain = wait_done(client, fixed, timeout=240)
    for name, job in done.items():
        assert job["status"] == "completed", (name, job["error"])
        assert job["options"]["crf"] is None and job["options"]["target_vmaf"] == 93
        assert abs(job["result"]["quality"]["vmaf"]["mean"] - 93) <= 2, name
    # Easy content needs fewer bits for the same quality than the fixed CRF gives it.
    assert done["static"]["result"]["size_bytes"] < plain["result"]["size_bytes"]


# -- the options' rules ----------------------------------------------------------------


def _errors(raw: dict[str, str]) -> dict[str, str]:
    with pytest.raises(InvalidOption) as caught:
        resolve_options(raw)
    return {e["field"]: e["message"] for e in caught.value.errors}


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ({"loudness": "loud"}, "loudness", "must be one of ebu or streaming"),
        ({"quality_report": "maybe"}, "quality_report", "true or false"),
        ({"target_vmaf": "0"}, "target_vmaf", "between 1 and 100"),
        ({"target_vmaf": "101"}, "target_vmaf", "between 1 and 100"),
        ({"target_vmaf": "high"}, "target_vmaf", "between 1 and 100"),
        ({"target_vmaf": "93", "crf": "20"}, "target_vmaf", "not both"),
        ({"target_vmaf": "93", "video_bitrate": "2M"}, "target_vmaf", "not both"),
        ({"target_vmaf": "93", "format": "hls"}, "target_vmaf", "does not apply to hls"),
        ({"target_vmaf": "93", "format": "cmaf"}, "target_vmaf", "does not apply to cmaf"),
        ({"target_vmaf": "93", "format": "gif"}, "target_vmaf", "constant-quality"),
        ({"target_vmaf": "93", "video_codec": "copy"}, "target_vmaf", "constant-quality"),
        ({"loudness": "ebu", "audio_codec": "copy"}, "loudness", "audio_codec=copy"),
        ({"loudness": "ebu", "audio_codec": "none"}, "loudness", "leaves the sound out"),
        ({"loudness": "ebu", "format": "gif"}, "loudness", "no sound"),
        ({"quality_report": "true", "preset": "mp3"}, "quality_report", "no video"),
        ({"quality_report": "true", "preset": "poster"}, "quality_report", "still"),
        ({"quality_report": "true", "video_codec": "none"}, "quality_report", "leaves"),
    ],
)
def test_the_options_are_refused_where_they_cannot_apply(
    raw: dict[str, str], field: str, fragment: str
) -> None:
    errors = _errors(raw)
    assert field in errors
    assert fragment in errors[field]


def test_the_options_resolve_where_they_apply() -> None:
    options = resolve_options({"target_vmaf": "93.5", "loudness": "Streaming"})
    assert options.target_vmaf == 93.5 and options.crf is None
    assert options.loudness == "streaming" and not options.quality_report
    assert resolve_options({"quality_report": "true", "format": "hls"}).quality_report
    assert resolve_options({"loudness": "ebu", "format": "dash"}).loudness == "ebu"
    assert resolve_options({"target_vmaf": "80", "preset": "webm-vp9"}).crf is None


def test_the_options_need_the_streams_they_work_on() -> None:
    silent = MediaInfo("mp4", "mov", 2.0, VideoInfo("h264", 64, 64, 25.0, "yuv420p", 0), None)
    sound = MediaInfo("wav", "wav", 2.0, None, AudioInfo("pcm_s16le", 1, 48000))
    with pytest.raises(InvalidOption) as caught:
        check_against_input(resolve_options({"loudness": "ebu"}), silent)
    assert [e["field"] for e in caught.value.errors] == ["loudness"]
    options = resolve_options({"format": "mkv", "quality_report": "true", "target_vmaf": "90"})
    with pytest.raises(InvalidOption) as caught:
        check_against_input(options, sound)
    fields = [e["field"] for e in caught.value.errors]
    assert "quality_report" in fields and "target_vmaf" in fields
    check_against_input(resolve_options({"preset": "m4a", "loudness": "ebu"}), sound)


def test_a_refused_option_is_a_problem_answer(server: LiveServer, quiet: Path) -> None:
    with api_client(server.url, server.key) as client:
        body = assert_problem(
            post_convert(client, quiet, preset="m4a", quality_report="true"),
            422,
            "invalid_option",
        )
        assert body["errors"][0]["field"] == "quality_report"
        body = assert_problem(
            post_convert(client, quiet, target_vmaf="93", crf="20"), 422, "invalid_option"
        )
        assert body["errors"][0]["field"] == "target_vmaf"


# -- the search itself -----------------------------------------------------------------


def test_samples_spread_over_a_long_span_and_a_short_span_is_its_own_sample() -> None:
    assert sample_spans(1.0, 4.0) == [(1.0, 4.0)]
    spans = sample_spans(0.0, 60.0)
    assert [round(start, 3) for start, _ in spans] == [9.0, 29.0, 49.0]
    assert all(seconds == 2.0 for _, seconds in spans)


def test_the_search_interpolates_between_the_crfs_it_tried() -> None:
    def curve(crf: int) -> float:  # a made-up content: its distortion grows exponentially
        return 100.0 - 0.5 * math.exp(0.1 * crf)

    search = CrfSearch(target=90.0, low=0, high=51, first=23)
    tried = []
    while (crf := search.next_crf()) is not None:
        tried.append(crf)
        search.record(crf, curve(crf))
    assert tried == [23, 29, 30]
    assert search.choice() == 30  # 100 - 0.5 * e^3 = 89.96
    # A target beyond what was tried is extrapolated at most two steps (12 for H.264).
    search = CrfSearch(target=99.0, low=0, high=51, first=23)
    search.record(23, 90.0)
    search.record(17, 94.0)
    assert search.choice() == 5
    search = CrfSearch(target=10.0, low=0, high=51, first=23)
    search.record(23, 90.0)
    search.record(29, 85.0)
    assert search.choice() == 41
    # Within the codec's range, and a flat score takes the cheaper CRF.
    search = CrfSearch(target=99.0, low=0, high=51, first=3)
    search.record(3, 90.0)
    search.record(0, 94.0)
    assert search.choice() == 0
    search = CrfSearch(target=90.0, low=0, high=63, first=35)
    search.record(35, 97.0)
    search.record(43, 97.0)
    assert search.choice() == 43


def test_the_measuring_steps_surround_the_conversion(tmp_path: Path) -> None:
    """Loudness is measured before the conversion that applies it, the CRF searched
    before the encode that uses it, and the output measured after it, before the stills;
    a job that asks for none of it gets no extra run."""
    info = MediaInfo(
        "mp4",
        "mov",
        60.0,
        VideoInfo("h264", 1920, 1080, 25.0, "yuv420p", 0),
        AudioInfo("aac", 2, 44100),
    )
    settings = make_settings(tmp_path)
    options = resolve_options(
        {"loudness": "ebu", "target_vmaf": "93", "quality_report": "true", "poster": "true"}
    )
    plan = plan_outputs(options, info, tmp_path / "in.mp4", tmp_path, settings, main_name="o.mp4")
    add_measure_steps(plan, tmp_path / "in.mp4", settings)
    names = [step.name for step in plan.steps]
    samples = [
        f"sample{kind}-{t}-{n}" for t in range(3) for n in range(3) for kind in ("", "-score")
    ]
    assert names == ["loudness-input", *samples, "convert", "loudness-output", "quality", "poster"]
    # The conversion's argv is made when its turn comes, from what was measured.
    plan.audio_filters[:] = ["volume=2"]
    convert = plan.steps[names.index("convert")].command()
    assert convert is not None and convert[convert.index("-af") + 1] == "volume=2"

    plain = plan_outputs(
        resolve_options({}), info, tmp_path / "in.mp4", tmp_path, settings, main_name="o.mp4"
    )
    add_measure_steps(plain, tmp_path / "in.mp4", settings)
    assert [step.name for step in plain.steps] == ["convert"]

"""Options and presets: defaults, validation of every field, format/codec rules, input checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidq.config import Settings
from vidq.errors import InvalidOption
from vidq.jobs.input_checks import check_against_input
from vidq.jobs.options import (
    DEFAULT_PRESET,
    OPTION_FIELDS,
    PRESET_ONLY_FIELDS,
    PRESETS,
    ResolvedOptions,
    output_content_type,
    output_extension,
    resolve_options,
)
from vidq.media.command import build_command, output_size
from vidq.media.formats import (
    AUDIO_CODECS,
    FORMATS,
    VIDEO_CODECS,
    format_content_type,
    format_extension,
)
from vidq.media.info import AudioInfo, MediaInfo, VideoInfo


def errors_of(raw: dict[str, str]) -> dict[str, str]:
    """The field -> message map of the InvalidOption that `raw` must raise."""
    with pytest.raises(InvalidOption) as caught:
        resolve_options(raw)
    assert caught.value.errors, "InvalidOption must list its fields"
    return {e["field"]: e["message"] for e in caught.value.errors}


def media(
    *, video: str | None = "h264", audio: str | None = "aac", duration: float | None = 10.0
) -> MediaInfo:
    return MediaInfo(
        container="mp4",
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        duration_seconds=duration,
        video=None if video is None else VideoInfo(video, 1920, 1080, 25.0, "yuv420p", 0),
        audio=None if audio is None else AudioInfo(audio, 2, 48000),
    )


def test_default_is_browser_safe_mp4() -> None:
    options = resolve_options({})
    assert options == ResolvedOptions(
        preset=DEFAULT_PRESET,
        format="mp4",
        video_codec="h264",
        audio_codec="aac",
        width=None,
        height=None,
        upscale=False,
        crf=23,
        video_bitrate=None,
        audio_bitrate="128k",
        fps=None,
        start=None,
        end=None,
        hdr="tonemap",
        deinterlace="auto",
    )


def test_presets_named_by_the_api_exist_and_resolve() -> None:
    for name in ("mp4-h264", "mp4-h264-720p", "webm-vp9", "mp4-av1", "gif", "mp3", "m4a"):
        assert name in PRESETS
    for name, preset in PRESETS.items():
        options = resolve_options({"preset": name})
        assert options.preset == name and preset.description
        for key, value in preset.options.items():
            assert getattr(options, key) == value, (name, key)


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        (
            "mp4-h264-720p",
            {"short_side": 720, "height": None, "width": None, "video_codec": "h264"},
        ),
        ("webm-vp9", {"format": "webm", "video_codec": "vp9", "audio_codec": "opus", "crf": 32}),
        ("mp4-av1", {"video_codec": "av1", "audio_codec": "aac", "crf": 35}),
        (
            "gif",
            {
                "video_codec": "gif",
                "audio_codec": "none",
                "width": 480,
                "fps": 10.0,
                "crf": None,
                "audio_bitrate": None,
            },
        ),
        (
            "mp3",
            {
                "video_codec": "none",
                "audio_codec": "mp3",
                "audio_bitrate": "192k",
                "crf": None,
                "width": None,
            },
        ),
        ("m4a", {"format": "m4a", "video_codec": "none", "audio_codec": "aac"}),
    ],
)
def test_preset_values(preset: str, expected: dict[str, object]) -> None:
    options = resolve_options({"preset": preset})
    assert {k: getattr(options, k) for k in expected} == expected


def test_explicit_options_win_over_the_preset() -> None:
    options = resolve_options(
        {
            "preset": "mp4-h264-720p",
            "height": "480",
            "crf": "18",
            "audio_bitrate": "192k",
            "fps": "29.97",
            "upscale": "true",
            "start": "1.5",
            "end": "4",
        }
    )
    assert (options.height, options.crf, options.audio_bitrate) == (480, 18, "192k")
    assert (options.fps, options.upscale, options.start, options.end) == (29.97, True, 1.5, 4.0)


def test_format_alone_brings_its_own_codecs() -> None:
    webm = resolve_options({"format": "webm"})
    assert (webm.video_codec, webm.audio_codec, webm.crf, webm.audio_bitrate) == (
        "vp9",
        "opus",
        32,
        "96k",
    )
    mkv = resolve_options({"format": "mkv"})  # mkv holds the preset's h264 + aac
    assert (mkv.video_codec, mkv.audio_codec, mkv.crf) == ("h264", "aac", 23)
    mp3 = resolve_options({"format": "mp3"})
    assert (mp3.video_codec, mp3.audio_codec, mp3.crf) == ("none", "mp3", None)
    gif = resolve_options({"format": "gif"})
    assert (gif.video_codec, gif.audio_codec, gif.fps) == ("gif", "none", 10.0)


def test_a_preset_crf_only_carries_to_its_own_codec() -> None:
    assert resolve_options({"video_codec": "av1"}).crf == 35  # av1's default, not h264's 23
    assert resolve_options({"preset": "webm-vp9", "format": "mkv"}).crf == 32


def test_video_bitrate_replaces_the_preset_crf() -> None:
    options = resolve_options({"video_bitrate": "2.5M"})
    assert (options.video_bitrate, options.crf) == ("2500k", None)


def test_preset_settings_that_do_not_apply_are_dropped() -> None:
    options = resolve_options(
        {"preset": "mp4-h264-720p", "video_codec": "copy", "audio_codec": "copy"}
    )
    assert (options.height, options.crf, options.audio_bitrate) == (None, None, None)


def test_empty_values_count_as_not_given_and_case_is_ignored() -> None:
    options = resolve_options({"width": "", "format": " MKV ", "upscale": "False"})
    assert (options.width, options.format, options.upscale) == (None, "mkv", False)


def test_bitrates_are_normalised() -> None:
    assert resolve_options({"video_bitrate": "4M"}).video_bitrate == "4M"
    assert resolve_options({"video_bitrate": "4000k"}).video_bitrate == "4M"
    assert resolve_options({"video_bitrate": "2500k"}).video_bitrate == "2500k"
    assert resolve_options({"audio_bitrate": "128000"}).audio_bitrate == "128k"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("preset", "fancy", "must be one of mp4-h264"),
        ("format", "avi", "must be one of mp4, webm"),
        ("video_codec", "mpeg2", "must be one of h264, h265"),
        ("audio_codec", "vorbis", "must be one of aac, opus"),
        ("width", "15", "between 16 and 7680"),
        ("width", "7681", "between 16 and 7680"),
        ("width", "12.5", "whole number"),
        ("height", "4321", "between 16 and 4320"),
        ("height", "tall", "whole number"),
        ("upscale", "maybe", "true or false"),
        ("crf", "-1", "between 0 and 63"),
        ("crf", "high", "whole number"),
        ("video_bitrate", "fast", "bitrate such as 2500k"),
        ("video_bitrate", "1k", "between 16k and 200M"),
        ("video_bitrate", "900M", "between 16k and 200M"),
        ("audio_bitrate", "128kbps", "bitrate such as"),
        ("audio_bitrate", "0", "more than 0"),
        ("audio_bitrate", "1M", "between 16k and 512k for aac"),
        ("audio_bitrate", "80029112409681.7K", "at most 512k"),
        ("fps", "0", "between 1 and 120"),
        ("fps", "121", "between 1 and 120"),
        ("fps", "nan", "between 1 and 120"),
        ("fps", "fast", "frames per second"),
        ("start", "-1", "0 or more"),
        ("start", "soon", "number of seconds"),
        ("end", "inf", "0 or more"),
        ("end", "0", "greater than start"),
        ("renditions", "720,abc", "whole number"),
        ("renditions", "720,720", "twice"),
        ("renditions", "8", "between 16 and 4320"),
        ("renditions", ",".join(["240"] * 9), "1 to 8 sizes"),
        ("segment_seconds", "1", "between 2 and 10"),
        ("segment_seconds", "11", "between 2 and 10"),
        ("poster", "maybe", "true or false"),
        ("poster_at", "-1", "number of seconds"),
        ("storyboard", "2", "true or false"),
        ("storyboard_interval", "0", "between 0.1 and 3600"),
        ("watermark_position", "middle", "must be one of"),
        ("watermark_margin", "0.5", "from 0 to 0.45"),
        ("watermark_scale", "0", "above 0 to 1"),
        ("watermark_opacity", "1.5", "from 0 to 1"),
        ("watermark_opacity", "-0.1", "from 0 to 1"),
        ("subtitles_mode", "soft", "must be one of"),
        ("transcode", "never", "one of"),
        ("trim", "keyframe", "one of"),
        ("hdr", "hdr10", "tonemap or keep"),
        ("rotate", "-90", "90, 180 or 270"),
        ("flip", "x", "h or v"),
        ("crop", "100x50", "w:h:x:y"),
        ("crop", "8:8:0:0", "at least 16x16"),
        ("deinterlace", "yes", "auto or off"),
    ],
)
def test_each_field_is_validated(field: str, value: str, fragment: str) -> None:
    errors = errors_of({field: value})
    assert list(errors) == [field]
    assert fragment in errors[field]


def test_every_field_has_a_validator() -> None:
    assert set(OPTION_FIELDS) == {
        "preset",
        "format",
        "video_codec",
        "audio_codec",
        "width",
        "height",
        "upscale",
        "crf",
        "video_bitrate",
        "audio_bitrate",
        "fps",
        "start",
        "end",
        "renditions",
        "segment_seconds",
        "poster",
        "poster_at",
        "storyboard",
        "storyboard_interval",
        "watermark",
        "watermark_position",
        "watermark_margin",
        "watermark_scale",
        "watermark_opacity",
        "subtitles",
        "subtitles_mode",
        "transcode",
        "trim",
        "loudness",
        "quality_report",
        "target_vmaf",
        "hdr",
        "rotate",
        "flip",
        "crop",
        "deinterlace",
        "priority",
    }


def test_the_option_fields_are_the_resolved_fields_and_each_is_parsed() -> None:
    assert tuple(ResolvedOptions.model_fields) == (*OPTION_FIELDS, *PRESET_ONLY_FIELDS)
    assert PRESET_ONLY_FIELDS == ("short_side",)  # set by a preset; a client cannot send it
    assert "unknown option" in errors_of({"short_side": "720"})["short_side"]
    # Each is a known option (an empty value counts as not given).
    assert resolve_options(dict.fromkeys(OPTION_FIELDS, "")) == resolve_options({})


def test_unknown_option() -> None:
    errors = errors_of({"colour": "red"})
    assert "unknown option" in errors["colour"]


def test_every_bad_field_is_listed_at_once() -> None:
    errors = errors_of(
        {"width": "5", "height": "x", "fps": "500", "format": "avi", "bogus": "1", "end": "-3"}
    )
    assert set(errors) == {"width", "height", "fps", "format", "bogus", "end"}
    with pytest.raises(InvalidOption) as caught:
        resolve_options({"width": "5", "crf": "99"})
    assert "width:" in caught.value.detail and "crf:" in caught.value.detail


@pytest.mark.parametrize(
    ("codec", "low", "high"), [("h264", 0, 51), ("h265", 0, 51), ("vp9", 0, 63), ("av1", 0, 63)]
)
def test_crf_range_is_the_codecs_own(codec: str, low: int, high: int) -> None:
    fmt = "mkv"
    assert resolve_options({"format": fmt, "video_codec": codec, "crf": str(low)}).crf == low
    assert resolve_options({"format": fmt, "video_codec": codec, "crf": str(high)}).crf == high
    errors = errors_of({"format": fmt, "video_codec": codec, "crf": str(high + 1)})
    assert f"between {low} and {high}" in errors["crf"]


def test_end_must_follow_start() -> None:
    assert "greater than start (5 s)" in errors_of({"start": "5", "end": "5"})["end"]
    assert resolve_options({"end": "2"}).end == 2.0


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ({"format": "webm", "video_codec": "h264"}, "video_codec", "webm format cannot hold h264"),
        ({"format": "webm", "audio_codec": "aac"}, "audio_codec", "webm format cannot hold aac"),
        ({"format": "mov", "video_codec": "vp9"}, "video_codec", "mov format cannot hold vp9"),
        ({"format": "mp3", "audio_codec": "aac"}, "audio_codec", "use mp3 or copy"),
        ({"format": "mp3", "video_codec": "h264"}, "video_codec", "mp3 format cannot hold h264"),
        ({"format": "m4a", "audio_codec": "opus"}, "audio_codec", "use aac or copy"),
        ({"format": "gif", "video_codec": "h264"}, "video_codec", "gif format cannot hold"),
        ({"format": "gif", "audio_codec": "aac"}, "audio_codec", "gif format cannot hold aac"),
        ({"format": "mp4", "video_codec": "gif"}, "video_codec", "use format=gif"),
        ({"format": "gif", "video_codec": "none"}, "video_codec", "gif format needs video"),
        ({"format": "gif", "video_codec": "copy"}, "video_codec", "gif format cannot copy video"),
        ({"format": "mp3", "audio_codec": "none"}, "audio_codec", "mp3 format needs audio"),
        ({"video_codec": "none", "audio_codec": "none"}, "audio_codec", "both be none"),
        ({"video_codec": "copy", "width": "640"}, "width", "video_codec=copy"),
        ({"video_codec": "copy", "crf": "20"}, "crf", "video_codec=copy"),
        ({"video_codec": "copy", "fps": "30"}, "fps", "video_codec=copy"),
        ({"video_codec": "copy", "video_bitrate": "1M"}, "video_bitrate", "video_codec=copy"),
        ({"video_codec": "copy", "upscale": "true"}, "upscale", "video_codec=copy"),
        ({"audio_codec": "copy", "audio_bitrate": "96k"}, "audio_bitrate", "audio_codec=copy"),
        ({"audio_codec": "none", "audio_bitrate": "96k"}, "audio_bitrate", "leaves the sound out"),
        ({"video_codec": "none", "height": "480"}, "height", "leaves the video out"),
        ({"format": "mp3", "width": "320"}, "width", "mp3 format has no video"),
        ({"format": "gif", "crf": "20"}, "crf", "does not apply to the gif format"),
        ({"format": "gif", "video_bitrate": "1M"}, "video_bitrate", "gif format"),
        ({"format": "gif", "fps": "60"}, "fps", "at most 50 for gif"),
        ({"crf": "20", "video_bitrate": "1M"}, "crf", "not both"),
        ({"format": "mp3", "audio_bitrate": "384k"}, "audio_bitrate", "32k and 320k for mp3"),
    ],
)
def test_incompatible_combinations(raw: dict[str, str], field: str, fragment: str) -> None:
    errors = errors_of(raw)
    assert fragment in errors[field], errors


def test_copy_and_none_combinations_that_work() -> None:
    copy = resolve_options(
        {"format": "mkv", "video_codec": "copy", "audio_codec": "copy", "start": "1", "end": "2"}
    )
    assert (copy.crf, copy.width, copy.audio_bitrate) == (None, None, None)
    silent = resolve_options({"audio_codec": "none", "upscale": "false"})
    assert (silent.audio_codec, silent.audio_bitrate) == ("none", None)


def test_resolved_options_round_trip_through_json() -> None:
    options = resolve_options({"preset": "gif", "start": "0.5"})
    assert ResolvedOptions.model_validate_json(options.model_dump_json()) == options
    again = resolve_options({k: str(v) for k, v in options.model_dump().items() if v is not None})
    assert again == options


def test_the_constants_match_the_api() -> None:
    assert FORMATS == (
        "mp4",
        "webm",
        "mkv",
        "mov",
        "gif",
        "mp3",
        "m4a",
        "jpg",
        "hls",
        "dash",
        "cmaf",
    )
    assert VIDEO_CODECS == ("h264", "h265", "vp9", "av1", "copy", "none")
    assert AUDIO_CODECS == ("aac", "opus", "mp3", "copy", "none")


@pytest.mark.parametrize(
    ("fmt", "extension", "content_type"),
    [
        ("mp4", "mp4", "video/mp4"),
        ("webm", "webm", "video/webm"),
        ("mkv", "mkv", "video/x-matroska"),
        ("mov", "mov", "video/quicktime"),
        ("gif", "gif", "image/gif"),
        ("mp3", "mp3", "audio/mpeg"),
        ("m4a", "m4a", "audio/mp4"),
    ],
)
def test_output_names(fmt: str, extension: str, content_type: str) -> None:
    options = resolve_options({"format": fmt})
    assert (output_extension(options), output_content_type(options)) == (extension, content_type)
    assert (format_extension(fmt), format_content_type(fmt)) == (extension, content_type)


def test_input_checks_pass_for_a_normal_input() -> None:
    check_against_input(resolve_options({"start": "2", "end": "60"}), media())
    # Sound only into mp4 when asked for it; a package of sound alone.
    check_against_input(resolve_options({"video_codec": "none"}), media(video=None))
    check_against_input(resolve_options({"preset": "hls"}), media(video=None))
    check_against_input(resolve_options({}), media(audio=None))
    check_against_input(resolve_options({"start": "5"}), media(duration=None))


@pytest.mark.parametrize(
    ("raw", "info", "field", "fragment"),
    [
        ({"start": "10"}, media(duration=10.0), "start", "before the end of the input (10 s"),
        ({"preset": "gif"}, media(video=None), "format", "gif format needs a video stream"),
        ({"preset": "mp3"}, media(audio=None), "format", "mp3 format needs an audio stream"),
        ({"preset": "m4a"}, media(audio=None), "format", "m4a format needs an audio stream"),
        ({}, media(video=None), "preset", "the mp4-h264 preset makes a video"),
        ({"preset": "webm-vp9"}, media(video=None), "preset", "use preset mp3 or m4a"),
        ({"preset": "mp4-h264-720p", "audio_codec": "none"}, media(video=None), "preset", "m4a"),
        ({"format": "mkv"}, media(video=None), "format", "the mkv format makes a video"),
        ({"format": "mp4"}, media(video=None), "format", "the mp4 format makes a video"),
        ({"video_codec": "none"}, media(audio=None), "video_codec", "output would be empty"),
        (
            {"format": "webm", "video_codec": "copy"},
            media(video="h264"),
            "video_codec",
            "cannot hold the input's h264 video",
        ),
        (
            {"format": "mp4", "video_codec": "copy"},
            media(video="vp8"),
            "video_codec",
            "convert it with h264, h265, vp9 or av1 instead of copy",
        ),
        (
            {"format": "webm", "audio_codec": "copy"},
            media(audio="aac"),
            "audio_codec",
            "cannot hold the input's aac audio",
        ),
        (
            {"format": "mp3", "audio_codec": "copy"},
            media(audio="aac"),
            "audio_codec",
            "convert it with mp3 instead of copy",
        ),
    ],
)
def test_input_checks_refuse(
    raw: dict[str, str], info: MediaInfo, field: str, fragment: str
) -> None:
    with pytest.raises(InvalidOption) as caught:
        check_against_input(resolve_options(raw), info, sent=raw.keys())
    messages = {e["field"]: e["message"] for e in caught.value.errors}
    assert fragment in messages[field], messages


def test_copy_into_a_container_that_holds_the_codec() -> None:
    check_against_input(
        resolve_options({"format": "mkv", "video_codec": "copy", "audio_codec": "copy"}),
        media(video="vp8"),
    )
    check_against_input(
        resolve_options({"format": "mp4", "video_codec": "copy"}), media(video="hevc")
    )


@pytest.mark.parametrize("fmt", ["hls", "dash", "cmaf"])
def test_packages_take_a_ladder_not_sizes_or_bitrates(fmt: str) -> None:
    options = resolve_options({"format": fmt, "renditions": "720,360", "segment_seconds": "4"})
    assert (options.video_codec, options.audio_codec) == ("h264", "aac")
    assert options.renditions == (720, 360) and options.segment_seconds == 4
    assert options.crf is None and options.video_bitrate is None and options.width is None
    assert resolve_options({"preset": fmt}).format == fmt
    # A preset's size and quality are dropped; the same given explicitly is refused.
    assert resolve_options({"preset": "mp4-h264-720p", "format": fmt}).height is None
    errors = errors_of(
        {"format": fmt, "crf": "20", "video_bitrate": "2M", "width": "640", "video_codec": "vp9"}
    )
    assert set(errors) == {"crf", "video_bitrate", "width", "video_codec"}
    assert "renditions" in errors["width"] and "ladder" in errors["crf"]


def test_package_options_apply_only_to_packages() -> None:
    errors = errors_of({"format": "mp4", "renditions": "720", "segment_seconds": "4"})
    assert set(errors) == {"renditions", "segment_seconds"}


def test_stills_with_any_video_output() -> None:
    options = resolve_options({"poster": "true", "poster_at": "1.5", "storyboard": "yes"})
    assert options.poster and options.poster_at == 1.5 and options.storyboard
    assert options.storyboard_interval is None
    assert resolve_options({"format": "hls", "poster": "1"}).poster
    assert set(errors_of({"format": "mp3", "poster": "true", "storyboard": "true"})) == {
        "poster",
        "storyboard",
    }
    assert set(errors_of({"poster_at": "3", "storyboard_interval": "2"})) == {
        "poster_at",
        "storyboard_interval",
    }


def test_the_poster_preset_is_a_still_only() -> None:
    options = resolve_options({"preset": "poster", "width": "320", "poster_at": "2"})
    assert (options.format, options.video_codec, options.audio_codec) == ("jpg", "jpeg", "none")
    assert options.width == 320 and options.poster_at == 2 and not options.poster
    assert set(errors_of({"preset": "poster", "crf": "20", "poster": "true"})) == {
        "crf",
        "poster",
    }
    assert output_extension(options) == "jpg"


def test_the_720p_preset_sizes_the_short_side() -> None:
    """1280x720 landscape, 720x1280 portrait, never up; a given width or height wins."""
    preset = resolve_options({"preset": "mp4-h264-720p"})
    for size, expected in (
        ((1920, 1080), (1280, 720)),
        ((1080, 1920), (720, 1280)),
        ((3840, 2160), (1280, 720)),
        ((720, 720), (720, 720)),
        ((640, 360), (640, 360)),  # smaller: kept
        ((1440, 1080), (960, 720)),
    ):
        video = VideoInfo("h264", *size, 25.0, "yuv420p", 0)
        assert output_size(video, preset) == expected, size
    portrait = VideoInfo("h264", 1080, 1920, 25.0, "yuv420p", 0)
    given = resolve_options({"preset": "mp4-h264-720p", "height": "480"})
    assert given.short_side is None and output_size(portrait, given) == (270, 480)
    given = resolve_options({"preset": "mp4-h264-720p", "width": "360"})
    assert output_size(portrait, given) == (360, 640)
    upscaled = resolve_options({"preset": "mp4-h264-720p", "upscale": "true"})
    small = VideoInfo("h264", 360, 640, 25.0, "yuv420p", 0)
    assert output_size(small, upscaled) == (720, 1280)


def test_the_720p_command_scales_a_portrait_video_to_720x1280(tmp_path: Path) -> None:
    info = MediaInfo(
        container="mp4",
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        duration_seconds=10.0,
        video=VideoInfo("h264", 1080, 1920, 30.0, "yuv420p", 0),
        audio=AudioInfo("aac", 2, 48000),
    )
    options = resolve_options({"preset": "mp4-h264-720p"})
    argv = build_command("ffmpeg", tmp_path / "in", tmp_path / "out.mp4", options, info, Settings())
    assert any(arg.startswith("scale=720:1280:") for arg in argv[argv.index("-vf") + 1].split(","))


def test_preset_descriptions_claim_no_superlatives() -> None:
    for preset in PRESETS.values():
        text = preset.description.lower()
        assert "smallest" not in text and "best" not in text, preset.name

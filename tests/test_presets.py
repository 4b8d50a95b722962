"""Presets do what their names promise: sizes by the short side, video presets refuse a
file of sound only (pointing at the audio presets), descriptions as the README shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidq.jobs.presets import PRESETS

from .conftest import LiveServer
from .helpers import assert_problem, post_convert, submit_job
from .media_clips import make_clip

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_the_readme_shows_each_preset_as_it_describes_itself() -> None:
    for preset in PRESETS.values():
        assert f"| `{preset.name}` | {preset.description} |" in README, preset.name


@pytest.mark.parametrize(
    ("fields", "field"),
    [({}, "preset"), ({"preset": "webm-vp9"}, "preset"), ({"format": "mov"}, "format")],
)
def test_a_video_preset_refuses_sound_only(
    live_server: LiveServer, tmp_path: Path, fields: dict[str, str], field: str
) -> None:
    sound = make_clip(tmp_path / "sound.m4a", video=False)
    with live_server.client() as client:
        problem = assert_problem(post_convert(client, sound, **fields), 422, "invalid_option")
        assert problem["errors"][0]["field"] == field
        assert "mp3 or m4a" in problem["errors"][0]["message"]
        # What the answer suggests works.
        for preset in ("mp3", "m4a"):
            assert submit_job(client, sound, preset=preset)["options"]["preset"] == preset
        assert submit_job(client, sound, video_codec="none")["options"]["format"] == "mp4"

"""The README stays true: every setting and every preset is documented there."""

from __future__ import annotations

from pathlib import Path

from vidq.config import Settings
from vidq.jobs.presets import PRESETS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [name for name in Settings.model_fields if f"VIDQ_{name.upper()}" not in README]
    assert missing == []


def test_every_preset_is_documented() -> None:
    assert [name for name in PRESETS if f"`{name}`" not in README] == []


def test_readme_leads_with_the_two_commands() -> None:
    head = README[: README.index("## ")]
    assert "make run" in head and "make test" in head

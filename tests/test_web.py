"""The web page at `/` in a real browser (Chromium through Playwright) against a live server.

One walk through the page as a user would take it: the key prompt (a wrong key, then the
right one, and the key box folding away), an upload followed to `completed` and downloaded,
a long job cancelled, a job deleted, a file that is not a video refused in its own row.
tests/test_page_live.py follows several uploads at once through the live events. Set
VIDQ_TEST_SCREENSHOTS to a directory to keep the screenshots it takes.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .browser import browser_page, require_chromium
from .conftest import LiveServer

# Read at import: an autouse fixture clears VIDQ_* from the environment of each test.
KEEP_SCREENSHOTS = os.environ.get("VIDQ_TEST_SCREENSHOTS")

pytestmark = pytest.mark.browser


@pytest.fixture
def chromium() -> Path:
    """The browser, checked before anything else is set up."""
    return require_chromium()


@pytest.fixture
def page(chromium: Path, live_server: LiveServer) -> Iterator[Any]:
    """A fresh Chromium page on which script errors fail the test.

    The browser logs every non-2xx fetch ("Failed to load resource"); the wrong key and the
    deleted job are meant to give some. Any other console error is a real one.
    """
    with browser_page(
        chromium, expected_console_error=lambda text: "Failed to load resource" in text
    ) as page:
        yield page


def screenshot(page: Any, path: Path) -> None:
    """Take one, after checking the page fits the window's width (no sideways scrolling)."""
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    if KEEP_SCREENSHOTS:
        Path(KEEP_SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(KEEP_SCREENSHOTS) / path.name)


def row_of(page: Any, job_id: str) -> Any:
    return page.locator(f'#jobs tbody tr[data-job-id="{job_id}"]')


def upload(page: Any, path: Path, preset: str) -> str:
    """Choose a preset, then a file (its upload starts at once); the new job's id, once its
    row shows."""
    from playwright.sync_api import expect

    page.get_by_label("Preset").select_option(preset)
    with page.expect_response(lambda r: r.url.endswith("/convert")) as answer:
        page.locator("#file").set_input_files(str(path))
    response = answer.value
    assert response.status == 202, response.text()
    job_id: str = response.json()["id"]
    row = row_of(page, job_id)
    expect(row).to_be_visible()
    expect(row.locator(".file-name")).to_have_text(path.name)
    return job_id


def test_web_page(
    page: Any, live_server: LiveServer, clip: Path, long_clip: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with live_server.client() as client:
        presets = [p["name"] for p in client.get("/presets").json()["presets"]]
        owner = client.get("/account").json()["name"]
    assert "mp4-h264" in presets and "webm-vp9" in presets

    # 1. The key prompt; a wrong key is refused in words; the right one loads the presets.
    page.goto(live_server.url + "/")
    key = page.get_by_label("API key", exact=True)
    expect(key).to_be_visible()
    expect(key).to_be_focused()
    expect(page.get_by_role("button", name="Drop video files here")).to_be_hidden()
    screenshot(page, tmp_path / "1-key-prompt.png")

    key.fill("vq_not-a-real-key")
    page.get_by_role("button", name="Use key").click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    expect(page.locator("#preset option")).to_have_count(0)
    assert page.evaluate("localStorage.getItem('vidq-api-key')") is None, "a refused key was kept"
    screenshot(page, tmp_path / "2-wrong-key.png")

    key.fill(live_server.key)
    key.press("Enter")  # the key field is a form: Enter works as well as the button
    expect(page.locator("#preset option")).to_have_count(len(presets))
    expect(page.get_by_label("Preset")).to_have_value("mp4-h264")
    expect(page.locator("#error")).to_be_empty()
    # The key box folds away to a line naming the account; focus goes to the drop zone.
    change_key = page.get_by_role("button", name="Change key")
    expect(key).to_be_hidden()
    expect(page.locator("#key-status")).to_have_text(f"Using the key of “{owner}”.")
    expect(change_key).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("button", name="Drop video files here")).to_be_focused()
    expect(page.locator("#jobs-empty")).to_be_visible()

    # 2. Upload the short clip; its row follows it to completed and offers the signed link.
    done_id = upload(page, clip, "mp4-h264")
    done_row = row_of(page, done_id)
    expect(done_row.locator(".status")).to_have_text("completed", timeout=30_000)
    expect(done_row.locator(".percent")).to_have_text("100 %")
    expect(page.locator("#jobs-empty")).to_be_hidden()
    with live_server.client() as client:
        job = client.get(f"/job/{done_id}").json()
    assert job["status"] == "completed" and job["options"]["preset"] == "mp4-h264"
    link = done_row.get_by_role("link", name="Download")
    expect(link).to_have_attribute("href", job["result"]["download_url"])
    download = httpx.get(link.get_attribute("href"), timeout=30)  # no key: the URL is signed
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("video/mp4")
    assert len(download.content) > 0 and download.content[4:8] == b"ftyp"
    assert len(download.content) == job["result"]["size_bytes"]

    # 3. Upload the long clip as VP9 and cancel it while it waits or runs.
    long_id = upload(page, long_clip, "webm-vp9")
    long_row = row_of(page, long_id)
    # The live events show the job start and its progress move; then it is cancelled mid-way.
    expect(long_row.locator(".status")).to_have_text("running", timeout=20_000)
    expect(long_row.locator(".percent")).to_have_text(re.compile(r"^[1-9]\d? %$"), timeout=20_000)
    long_row.get_by_role("button", name="Cancel").click()
    expect(long_row.locator(".status")).to_have_text("cancelled")
    expect(long_row.get_by_role("button", name="Cancel")).to_have_count(0)
    with live_server.client() as client:
        assert client.get(f"/job/{long_id}").json()["status"] == "cancelled"

    # The key is remembered: a reload shows the list without asking again.
    page.reload()
    expect(row_of(page, done_id).locator(".status")).to_have_text("completed")
    expect(row_of(page, long_id).locator(".status")).to_have_text("cancelled")
    screenshot(page, tmp_path / "3-jobs.png")

    # The folded key box opens again; a wrong key typed while a good one is in use is
    # refused, and the page keeps the good one.
    expect(key).to_be_hidden()
    change_key.click()
    expect(change_key).to_have_attribute("aria-expanded", "true")
    expect(key).to_be_focused()
    key.fill("vq_another-wrong-key")
    key.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text(f"still uses the key of “{owner}”")
    expect(key).to_have_value(live_server.key)
    expect(row_of(page, done_id)).to_have_count(1)

    # 4. Delete the cancelled job from the page (after a confirmation naming the file): its
    # row goes, and so does the job.
    questions: list[str] = []

    def confirm(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    long_row.get_by_role("button", name="Delete").click()
    expect(long_row).to_have_count(0)
    assert len(questions) == 1 and long_clip.name in questions[0]
    expect(row_of(page, done_id)).to_have_count(1)
    with live_server.client() as client:
        assert client.get(f"/job/{long_id}").status_code == 404
    screenshot(page, tmp_path / "4-after-delete.png")

    # A file that is not a video: refused in a row of its own, with the reason, until dismissed.
    not_video = tmp_path / "notes.mp4"
    not_video.write_bytes(b"not a video at all\n" * 64)
    page.locator("#file").set_input_files(str(not_video))
    refused = page.locator("#jobs tbody tr[data-upload-id]")
    expect(refused.locator(".status")).to_have_text("not accepted")
    expect(refused.locator(".row-error")).to_contain_text(re.compile(r"\w+"))
    expect(page.locator("#jobs tbody tr")).to_have_count(2)
    refused.get_by_role("button", name="Dismiss").click()
    expect(page.locator("#jobs tbody tr")).to_have_count(1)

    # Forget the key: back to the prompt, nothing of the account left on the page.
    page.get_by_role("button", name="Forget key").click()
    expect(key).to_be_focused()
    expect(key).to_have_value("")
    expect(page.locator("#jobs tbody tr")).to_have_count(0)
    expect(page.get_by_role("button", name="Drop video files here")).to_be_hidden()
    expect(change_key).to_be_hidden()
    assert page.evaluate("localStorage.getItem('vidq-api-key')") is None

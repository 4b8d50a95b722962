"""Chromium through Playwright, for the tests of the web page and of its players.

The system's Chromium is used (test tools cannot download browsers here). In CI a missing
browser is a failure, never a skip: the browser tests are the proof that the page works.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str) -> None:
    """No browser: a failure in CI (it must not pass by skipping), a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the browser test must run", pytrace=False)
    pytest.skip(reason)


def require_chromium() -> Path:
    """The browser and Playwright, checked before anything else is set up."""
    if not CHROMIUM.is_file():
        unavailable(f"{CHROMIUM} is missing: install Chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the playwright package is missing: pip install -e '.[dev]'")
    return CHROMIUM


@contextmanager
def browser_page(
    chromium: Path, *, expected_console_error: Callable[[str], bool] = lambda text: False
) -> Iterator[Any]:
    """A fresh Chromium page; script errors and console errors on it fail the test.

    `expected_console_error(text)` lets a test name the console errors it provokes. Open it
    only once the live server runs: the server's set-up runs its own event loop, which it
    cannot do while Playwright's (sync API) runs in this thread.
    """
    from playwright.sync_api import sync_playwright

    errors: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error" and not expected_console_error(message.text):
            errors.append(f"console: {message.text}")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1100, "height": 800})
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            page.on("console", on_console)
            yield page
        finally:
            browser.close()
    assert not errors, errors


def assert_stayed_home(requested: list[str]) -> None:
    """No request left 127.0.0.1 (blob: and data: URLs are the page's own memory)."""
    assert requested
    away = [
        url
        for url in requested
        if urlsplit(url).scheme not in ("blob", "data") and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert not away, away


def wait_playing(page: Any, selector: str = "video", past: float = 1.0) -> None:
    """The element has data to play on (HAVE_FUTURE_DATA) and its time has moved past `past`."""
    page.wait_for_function(
        """([selector, past]) => {
            const media = document.querySelector(selector);
            return media && !media.error && media.readyState >= 3 && media.currentTime > past;
        }""",
        arg=[selector, past],
        timeout=20_000,
    )

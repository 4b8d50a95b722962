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

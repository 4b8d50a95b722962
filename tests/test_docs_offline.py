"""/docs works offline: Swagger UI comes from vidq's own static files (`make vendor-docs`).

In Chromium with every request to another host aborted, the page shows the API's
operations; and it asked no other host for anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from vidq.api.app import STATIC_DIR

from .browser import browser_page, require_chromium
from .conftest import LiveServer

VENDORED = STATIC_DIR / "vendor" / "swagger-ui"

pytestmark = pytest.mark.browser


def test_swagger_ui_is_vendored_with_its_licence_and_version() -> None:
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE"):
        assert (VENDORED / name).stat().st_size > 0, name
    assert (VENDORED / "VERSION").read_text().startswith("swagger-ui-dist ")


def test_docs_page_points_at_vidq_itself(live_server: LiveServer) -> None:
    page = httpx.get(f"{live_server.url}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    bundle = httpx.get(f"{live_server.url}/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000


def test_docs_render_with_no_other_host(live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    chromium = require_chromium()
    own = urlsplit(live_server.url).netloc
    elsewhere: list[str] = []

    def only_vidq(route: Any) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with browser_page(chromium) as page:
        page.route("**/*", only_vidq)
        page.goto(f"{live_server.url}/docs")
        convert = page.locator(".opblock-post", has_text="/convert").first
        expect(convert).to_be_visible()
        expect(convert.locator(".opblock-summary-method")).to_have_text("POST")
        expect(page.locator(".opblock-get", has_text="/job/{job_id}/events")).to_be_visible()
        expect(page.locator(".info .title")).to_contain_text("vidq")
    assert elsewhere == []


def test_vendored_files_ship_with_the_package() -> None:
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert '"web/static/vendor/*/*"' in pyproject

"""The page's resumable uploads, in a real browser (Chromium): a file above the page's
threshold (its form's `data-resumable-above-bytes`, set low here) goes to `/uploads` with
the bundled tus-js-client, its options checked first (`POST /convert?dry_run=true`, so a
bad one is refused before a byte goes up); the network drops mid-upload and the upload
goes on from the server's offset; a reload mid-upload and the same file chosen again go
on with the same upload; each ends as a job completed on the page.

The browser reaches the server through a proxy that holds uploads to a slow rate and cuts
every connection on demand (tests/faulty_proxy.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from .browser import browser_page, require_chromium
from .conftest import LiveServer
from .faulty_proxy import FaultyProxy, proxy_to
from .helpers import wait_for
from .media_clips import make_padded_clip

pytestmark = pytest.mark.browser

MIB = 1024 * 1024
SET_THRESHOLD = "(bytes) => { document.querySelector('#upload-form').dataset.resumableAboveBytes = String(bytes); }"


@dataclass
class Sent:
    """The browser's requests to the tus endpoint: (method, path, Upload-Offset)."""

    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    def record(self, request: Any) -> None:
        path = urlsplit(request.url).path
        if path.startswith(("/uploads", "/convert")):
            self.requests.append((request.method, path, request.headers.get("upload-offset")))

    def of(self, method: str, prefix: str) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[0] == method and r[1].startswith(prefix)]


@pytest.fixture
def proxy(live_server: LiveServer) -> Iterator[FaultyProxy]:
    with proxy_to(live_server.url) as proxy:
        yield proxy


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def page(live_server: LiveServer, sent: Sent) -> Iterator[Any]:
    """A fresh Chromium page. The connections the proxy cuts, and the 422, are logged by the
    browser as failed resources: expected here."""
    chromium = require_chromium()
    with browser_page(
        chromium,
        expected_console_error=lambda text: (
            "Failed to load resource" in text or "net::ERR_" in text
        ),
    ) as page:
        page.context.on("request", sent.record)
        page.on("filechooser", lambda chooser: None)
        page.on("dialog", lambda dialog: dialog.accept())  # leave the page while it uploads
        yield page


@pytest.fixture
def master(clip: Path, tmp_path: Path) -> Path:
    """A valid MP4 of 3 MiB and a bit (the clip, padded)."""
    return make_padded_clip(tmp_path / "master.mp4", clip, 3 * MIB + 4321)


def open_page(page: Any, url: str, key: str | None) -> None:
    """The page through the proxy, signed in, its threshold at 1 MiB."""
    from playwright.sync_api import expect

    page.goto(url + "/")
    if key is not None:
        field = page.get_by_label("API key", exact=True)
        field.fill(key)
        field.press("Enter")
    expect(page.get_by_role("button", name="Change key")).to_be_visible()
    page.evaluate(SET_THRESHOLD, MIB)


def choose(page: Any, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Drop video files here").click()
    chooser.value.set_files([str(path)])


def row_named(page: Any, name: str) -> Any:
    return page.locator("#jobs tbody tr").filter(
        has=page.locator(".file-name", has_text=re.compile(f"^{re.escape(name)}$"))
    )


def test_a_large_file_goes_on_after_the_network_drops(
    page: Any, live_server: LiveServer, proxy: FaultyProxy, master: Path, sent: Sent
) -> None:
    from playwright.sync_api import expect

    open_page(page, proxy.url, live_server.key)

    # A bad option: refused by the dry run, before any upload is begun.
    page.get_by_text("More options").click()
    page.get_by_label("Width (px)").fill("5")
    choose(page, master)
    row = row_named(page, master.name)
    expect(row.locator(".status")).to_have_text("not accepted")
    expect(row.locator(".row-error")).to_have_text("width: must be between 16 and 7680; got 5")
    assert sent.of("POST", "/convert") == [("POST", "/convert", None)]
    assert not sent.of("POST", "/uploads")
    row.get_by_role("button", name="Dismiss").click()
    page.get_by_label("Width (px)").fill("")

    # The upload begins, slowly; the network drops a third of the way in, then comes back.
    proxy.upload_bytes_per_second = 512 * 1024
    start = proxy.sent_bytes
    choose(page, master)
    row = row_named(page, master.name)
    expect(row.locator(".status")).to_have_text("uploading")
    wait_for(lambda: proxy.sent_bytes - start >= MIB, timeout=30, what="a third of the upload")
    with proxy.fault("drop"):
        expect(row.locator(".cell-status")).to_contain_text("reconnecting", timeout=15_000)
    proxy.upload_bytes_per_second = None
    expect(row.locator(".status")).to_have_text("completed", timeout=60_000)
    expect(row.get_by_role("link", name="Download")).to_be_visible()

    # One upload, asked for its offset after the drop and continued from it, then its job.
    assert len(sent.of("POST", "/uploads")) == 1
    assert sent.of("HEAD", "/uploads/")
    offsets = [int(offset or 0) for _, _, offset in sent.of("PATCH", "/uploads/")]
    assert offsets[0] == 0 and len(offsets) >= 2 and offsets[-1] > 0, offsets
    converts = sent.of("POST", "/convert")
    assert len(converts) == 3, converts  # the refused dry run, this one's dry run, its job


def test_the_same_file_after_a_reload_goes_on_with_its_upload(
    page: Any, live_server: LiveServer, proxy: FaultyProxy, master: Path, sent: Sent
) -> None:
    from playwright.sync_api import expect

    open_page(page, proxy.url, live_server.key)
    proxy.upload_bytes_per_second = 512 * 1024
    choose(page, master)
    expect(row_named(page, master.name).locator(".status")).to_have_text("uploading")
    wait_for(lambda: proxy.sent_bytes >= MIB, timeout=30, what="a third of the upload")

    # The page is left mid-upload (its key is remembered), its connection cut: it reaches
    # /uploads no more, and what the proxy held never arrives.
    uploads = re.compile(r"^http://[^/]+/uploads(/.*)?$")
    page.route(uploads, lambda route: route.abort())
    proxy.set_mode("drop")
    proxy.set_mode("healthy")
    page.reload()
    page.unroute(uploads)
    # The same file chosen again goes on with its upload.
    proxy.upload_bytes_per_second = None
    open_page(page, proxy.url, None)
    choose(page, master)
    row = row_named(page, master.name)
    expect(row.locator(".status")).to_have_text("completed", timeout=60_000)
    assert len(sent.of("POST", "/uploads")) == 1
    offsets = [int(offset or 0) for _, _, offset in sent.of("PATCH", "/uploads/")]
    assert offsets[0] == 0 and offsets[-1] > 0, offsets
    assert sent.of("HEAD", "/uploads/")  # the offset, asked for after the reload


def test_a_job_request_that_fails_is_tried_again_without_sending_the_file_again(
    page: Any, live_server: LiveServer, proxy: FaultyProxy, master: Path, sent: Sent
) -> None:
    from playwright.sync_api import expect

    open_page(page, proxy.url, live_server.key)
    # The network fails the first request for the job (after the whole file is in).
    failed: list[str] = []

    def fail_once(route: Any) -> None:
        if route.request.method == "POST" and "dry_run" not in route.request.url and not failed:
            failed.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route(re.compile(r"/convert(\?.*)?$"), fail_once)
    choose(page, master)
    row = row_named(page, master.name)
    expect(row.locator(".status")).to_have_text("upload failed")
    assert failed and len(sent.of("POST", "/uploads")) == 1
    patches = len(sent.of("PATCH", "/uploads/"))
    row.get_by_role("button", name=f"Upload {master.name} again").click()
    expect(row.locator(".status")).to_have_text("completed", timeout=60_000)
    # Only the job was asked for again: no new upload, no byte sent twice.
    assert len(sent.of("POST", "/uploads")) == 1
    assert len(sent.of("PATCH", "/uploads/")) == patches

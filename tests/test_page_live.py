"""The page with several uploads at once, followed live, in a real browser (Chromium).

Files dropped together each get their own row, which follows the upload and then the
conversion through `GET /jobs/events` (read with fetch, the key in its header): no polling
of `/jobs` while the stream is open. A bad option is refused (422) at the start of a large
upload and the row says why, until the user dismisses it; an upload the user stops is not an
error; a failed one is tried again under the same Idempotency-Key. A stream that cannot
be opened falls back to polling and is opened again after waits. Nothing the browser asks
for leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from .browser import assert_stayed_home, browser_page, require_chromium, wait_playing
from .conftest import LiveServer

pytestmark = pytest.mark.browser

# Over the server's drain limit (64 MiB): the refusal must survive the connection's close.
LARGE_BYTES = 96 * 1024 * 1024
UPLOAD_BYTES_PER_SECOND = 4 * 1024 * 1024

DROP_FILES = """([zone, files]) => {
    const transfer = new DataTransfer();
    for (const [name, data] of files) {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        transfer.items.add(new File([bytes], name, {type: "video/mp4"}));
    }
    const target = document.querySelector(zone);
    for (const type of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
    }
}"""

PARSE_EVENTS = """(chunks) => {
    const events = [];
    const parser = new VidqEvents.EventStreamParser((event) => events.push(event));
    for (const chunk of chunks) parser.push(chunk);
    return events;
}"""


@dataclass
class Requests:
    """What the browser asked for, in order, each with the time it was sent."""

    sent: list[tuple[float, str, str]] = field(default_factory=list)

    def record(self, request: Any) -> None:
        self.sent.append((time.monotonic(), request.method, request.url))

    def urls(self) -> list[str]:
        return [url for _, _, url in self.sent]

    def to(self, path: str, since: float = 0.0) -> list[str]:
        """The URLs sent to `path` (any query) since that time."""
        return [url for at, _, url in self.sent if at >= since and urlsplit(url).path == path]


@pytest.fixture
def requests() -> Requests:
    return Requests()


@pytest.fixture
def page(live_server: LiveServer, requests: Requests) -> Iterator[Any]:
    """A fresh Chromium page recording its requests. The browser logs each 4xx answer
    ("Failed to load resource"): the 422 and the refused streams are meant to give some."""
    chromium = require_chromium()
    with browser_page(
        chromium, expected_console_error=lambda text: "Failed to load resource" in text
    ) as page:
        page.context.on("request", requests.record)
        # Listening from the start turns the interception of file pickers on before any is
        # opened (turning it on as a picker is awaited races with the key that opens it).
        page.on("filechooser", lambda chooser: None)
        yield page


@pytest.fixture
def large_file(tmp_path: Path) -> Path:
    """A large file of zeros (sparse on disk: made at once)."""
    path = tmp_path / "large.mp4"
    with path.open("wb") as out:
        out.truncate(LARGE_BYTES)
    return path


def sign_in(page: Any, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    page.goto(live_server.url + "/")
    key = page.get_by_label("API key", exact=True)
    key.fill(live_server.key)
    key.press("Enter")
    # The key box folds away once the key works, and can be opened again.
    expect(key).to_be_hidden()
    expect(page.get_by_role("button", name="Change key")).to_have_attribute(
        "aria-expanded", "false"
    )


def row_named(page: Any, name: str) -> Any:
    return page.locator("#jobs tbody tr").filter(
        has=page.locator(".file-name", has_text=re.compile(f"^{re.escape(name)}$"))
    )


def drop(page: Any, files: dict[str, bytes]) -> None:
    """Drop these files at once on the drop zone, as a drag from the desktop does."""
    encoded = [[name, base64.b64encode(data).decode()] for name, data in files.items()]
    page.evaluate(DROP_FILES, ["#drop-zone", encoded])


def choose_with_keyboard(page: Any, files: list[Path]) -> None:
    """Press Enter on the drop zone: the file picker opens (for several files); choose these."""
    zone = page.get_by_role("button", name="Drop video files here")
    zone.focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    assert chooser.value.is_multiple()
    chooser.value.set_files([str(path) for path in files])


def throttle_uploads(page: Any, bytes_per_second: int) -> Any:
    """Slow the browser's uploads (the DevTools network conditions); -1: no limit."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )
    return cdp


def test_event_stream_parser(page: Any, live_server: LiveServer) -> None:
    """The page's reader of text/event-stream, on chunks cut anywhere (a CRLF split too)."""
    page.goto(live_server.url + "/")
    events = page.evaluate(
        PARSE_EVENTS,
        [
            "event: job\r",
            '\nid: "e1"\r\ndata: {"id"',
            ':"a"}\r\n\r\n: keep-alive\n\n',
            "data: one\rdata:two\r\r",
            'event: deleted\ndata: {"id": "a"}\n\nevent: job\n',
        ],
    )
    assert events == [
        {"type": "job", "data": '{"id":"a"}', "id": '"e1"'},
        {"type": "message", "data": "one\ntwo", "id": '"e1"'},
        {"type": "deleted", "data": '{"id": "a"}', "id": '"e1"'},
    ]


def test_uploads_followed_live(
    page: Any, live_server: LiveServer, clip: Path, large_file: Path, requests: Requests
) -> None:
    from playwright.sync_api import expect

    sign_in(page, live_server)
    zone = page.get_by_role("button", name="Drop video files here")
    expect(zone).to_be_focused()
    expect(page.locator("#jobs-empty")).to_be_visible()

    # 1. A bad option with a large file: refused at once, and the row says why in words. The
    # file goes in one request here, as the multipart form (not resumably, as a file above the
    # page's threshold would: test_page_resumable.py), so that the early answer is what is seen.
    page.evaluate(
        "() => { document.querySelector('#upload-form').dataset.resumableAboveBytes = '1e12'; }"
    )
    page.get_by_text("More options").click()
    page.get_by_label("Width (px)").fill("5")
    with page.expect_response(lambda r: r.url.endswith("/convert")) as answer:
        choose_with_keyboard(page, [large_file])
    assert answer.value.status == 422
    refused = row_named(page, large_file.name)
    expect(refused.locator(".status")).to_have_text("not accepted")
    expect(refused.locator(".row-error")).to_have_text("width: must be between 16 and 7680; got 5")
    page.get_by_label("Width (px)").fill("")

    # 2. Two files dropped at once: a row each, followed to completed by the live events.
    stream_opened = min(at for at, _, url in requests.sent if url.endswith("/jobs/events"))
    data = clip.read_bytes()
    accepted: list[Any] = []
    page.on("response", lambda r: accepted.append(r) if r.url.endswith("/convert") else None)
    drop(page, {"one.mp4": data, "two.mp4": data})
    rows = [row_named(page, "one.mp4"), row_named(page, "two.mp4")]
    for row in rows:
        expect(row.locator(".status")).to_have_text("completed", timeout=30_000)
        expect(row.locator(".percent")).to_have_text("100 %")
        expect(row.get_by_role("link", name="Download")).to_be_visible()
    assert sorted(r.status for r in accepted) == [202, 202]
    ids = {r.json()["id"] for r in accepted}
    assert {row.get_attribute("data-job-id") for row in rows} == ids
    expect(page.locator("#jobs tbody tr")).to_have_count(3)

    # Live, not polled: /jobs was read once, right after the stream opened; no job was asked
    # for one by one; the stream stayed the one opened at sign-in.
    lists = requests.to("/jobs")
    assert len(lists) == 1, lists
    assert requests.to("/jobs", since=stream_opened) == lists
    assert len(requests.to("/jobs/events")) == 1
    assert not [url for url in requests.urls() if re.search(r"/job/[^/]+$", urlsplit(url).path)]

    # The refusal is still there: the list's own updates do not sweep it away; no stale
    # "is queued" line is left either.
    expect(refused.locator(".row-error")).to_contain_text("width")
    expect(page.get_by_text(re.compile("is queued"))).to_have_count(0)
    expect(page.locator("#error")).to_be_empty()

    # 3. One plays in the page.
    rows[0].get_by_role("button", name="Play").click()
    expect(page.locator("#player-section")).to_be_visible()
    wait_playing(page, "#player video", past=0.2)
    page.get_by_role("button", name="Close the player of one.mp4").click()

    # 4. An upload stopped by the user is no error: its row goes, nothing is kept.
    throttle_uploads(page, UPLOAD_BYTES_PER_SECOND)
    choose_with_keyboard(page, [large_file])
    uploading = page.locator("#jobs tbody tr[data-upload-id]").filter(
        has=page.locator(".status", has_text="uploading")
    )
    expect(uploading.locator(".percent")).to_have_text(re.compile(r"^[1-9]\d? %$"))
    uploading.get_by_role("button", name=f"Stop the upload of {large_file.name}").click()
    expect(uploading).to_have_count(0)
    focus_kept = "document.activeElement.closest('#jobs tbody tr, #drop-zone') !== null"
    assert page.evaluate(focus_kept), "the focus stays in the list (or goes to the drop zone)"
    expect(page.locator(".row-error")).to_have_count(1)  # the 422 of step 1 only
    expect(page.locator("#error")).to_be_empty()
    expect(page.locator("#announcer")).to_contain_text(
        f"The upload of {large_file.name} is stopped."
    )
    with live_server.client() as client:
        assert {job["id"] for job in client.get("/jobs").json()["jobs"]} == ids

    # The refusal goes when the user dismisses it.
    refused.get_by_role("button", name="Dismiss").click()
    expect(page.locator("#jobs tbody tr")).to_have_count(2)
    assert page.evaluate(focus_kept)
    assert_stayed_home(requests.urls())


def test_a_stream_that_fails_is_polled_then_opened_again(
    page: Any, live_server: LiveServer, clip: Path, requests: Requests
) -> None:
    from playwright.sync_api import expect

    with live_server.client() as client:
        files = {"file": ("before.mp4", clip.read_bytes(), "video/mp4")}
        assert client.post("/convert", files=files).status_code == 202
    failures = ["abort", "busy"]  # a connection that fails, then a server too busy

    def stream(route: Any) -> None:
        if not failures:
            route.continue_()
        elif failures.pop(0) == "abort":
            route.abort()
        else:
            route.fulfill(status=503, body="", headers={"Retry-After": "1"})

    page.route("**/jobs/events", stream)
    sign_in(page, live_server)
    # The list comes from the fallback poll while the stream cannot be had.
    expect(row_named(page, "before.mp4")).to_have_count(1)
    expect(page.locator("#live-status")).to_contain_text("interrupted")
    # Opened again after the waits; then /jobs is read once more, and polled no longer.
    expect(page.locator("#live-status")).to_be_empty(timeout=10_000)
    attempts = [at for at, _, url in requests.sent if urlsplit(url).path == "/jobs/events"]
    assert len(attempts) == 3
    assert attempts[2] - attempts[0] > 1.5, "the stream was opened again after waits"
    expect(row_named(page, "before.mp4").locator(".status")).to_have_text(
        "completed", timeout=30_000
    )
    page.wait_for_timeout(2500)  # longer than the poll's period
    assert len(requests.to("/jobs", since=attempts[2])) == 1
    assert_stayed_home(requests.urls())


def test_a_failed_upload_is_tried_again_with_the_same_idempotency_key(
    page: Any, live_server: LiveServer, clip: Path
) -> None:
    """A try that fails on the way may still have made its job: the next try carries the
    same Idempotency-Key, so that the server would give that job back, not make a second."""
    from playwright.sync_api import expect

    keys: list[str] = []

    def break_the_first_try(route: Any) -> None:
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) == 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/convert", break_the_first_try)
    sign_in(page, live_server)
    page.locator("#file").set_input_files(str(clip))
    row = row_named(page, clip.name)
    expect(row.locator(".status")).to_have_text("upload failed")
    expect(row.locator(".row-error")).to_have_text("the connection to the server failed.")
    row.get_by_role("button", name=f"Upload {clip.name} again").click()
    expect(row.locator(".status")).to_have_text("completed", timeout=30_000)
    assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) > 20
    with live_server.client() as client:
        jobs = client.get("/jobs").json()["jobs"]
    assert [job["id"] for job in jobs] == [row.get_attribute("data-job-id")]

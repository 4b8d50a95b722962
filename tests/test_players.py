"""Finished jobs played in a real browser (Chromium through Playwright) from a live server.

A streaming package made by real ffmpeg plays in the page's bundled hls.js and dash.js from
another origin (so through the signed URLs' CORS), both renditions of its ladder decoding.
Then the page itself: its Play control plays the package with its poster and shows the
storyboard tile under the pointer; a DASH-only package plays through dash.js; a single video,
a sound file and a still are shown in their own elements. Every request the browser makes
stays on the server: nothing comes from a CDN.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from .browser import assert_stayed_home, browser_page, require_chromium, wait_playing
from .conftest import LiveServer
from .helpers import submit_job, wait_done
from .media_clips import make_clip

pytestmark = pytest.mark.browser

HLS_JS = "/static/vendor/hls/hls.min.js"
DASH_JS = "/static/vendor/dashjs/dash.mediaplayer.min.js"
PACKAGE = {
    "preset": "cmaf",
    "renditions": "180,120",
    "segment_seconds": "2",
    "poster": "true",
    "storyboard": "true",
}
BLANK_PAGE = "<!doctype html><title>player</title><video muted playsinline></video>"


@pytest.fixture(scope="module")
def clip4s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of 320x180 with stereo sound: two 2-second segments per rendition."""
    return make_clip(
        tmp_path_factory.mktemp("players") / "four.mp4", seconds=4, size=(320, 180), channels=2
    )


@pytest.fixture
def chromium() -> Path:
    return require_chromium()


@pytest.fixture
def requested() -> list[str]:
    """Every URL the browser asks for, in order."""
    return []


@pytest.fixture
def page(chromium: Path, live_server: LiveServer, requested: list[str]) -> Iterator[Any]:
    """A fresh Chromium page that records its requests; any console error fails the test."""
    with browser_page(chromium) as page:
        page.context.on("request", lambda request: requested.append(request.url))
        yield page


def convert(live_server: LiveServer, clip: Path, **options: str) -> dict[str, Any]:
    """The completed Job of `clip` converted with `options`."""
    with live_server.client() as client:
        job = wait_done(client, submit_job(client, clip, **options)["id"])
    assert job["status"] == "completed", job["error"]
    result: dict[str, Any] = job["result"]
    assert result["base_url"].startswith(live_server.url + "/") and result["base_url"][-1] == "/"
    return job


class _BlankPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = BLANK_PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def other_origin() -> Iterator[str]:
    """Another site on 127.0.0.1 (another port, so another origin): a blank page with a <video>."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BlankPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def open_blank_page(page: Any, origin: str, player_js: str) -> None:
    """The other site's blank page, with one of the players bundled in vidq loaded into it."""
    page.goto(f"{origin}/player")
    page.add_script_tag(url=player_js)


PLAY_HLS = """async (url) => {
    const video = document.querySelector("video");
    const hls = new Hls();
    window.player = hls;
    const parsed = new Promise((resolve, reject) => {
        hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => resolve(data.levels.map((l) => l.height)));
        hls.on(Hls.Events.ERROR, (_, data) => { if (data.fatal) reject(new Error(data.details)); });
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    const heights = await parsed;
    await video.play();
    return {heights, audioTracks: hls.audioTracks.length};
}"""

PLAY_DASH = """async (url) => {
    const video = document.querySelector("video");
    const player = dashjs.MediaPlayer().create();
    window.player = player;
    const started = new Promise((resolve, reject) => {
        player.on(dashjs.MediaPlayer.events.STREAM_INITIALIZED, resolve);
        player.on(dashjs.MediaPlayer.events.ERROR, (event) => reject(new Error(JSON.stringify(event.error))));
    });
    player.initialize(video, url, true);
    await started;
    return {
        heights: player.getRepresentationsByType("video").map((r) => r.height),
        audio: player.getRepresentationsByType("audio").length,
    };
}"""


def switch_rendition(page: Any, switch: str, heights: list[int]) -> None:
    """Ask the player (`switch`, given the level index) for the other rendition; it plays on."""
    current = page.evaluate("document.querySelector('video').videoHeight")
    other = next(h for h in heights if h != current)
    start = page.evaluate("document.querySelector('video').currentTime")
    page.evaluate(switch, heights.index(other))
    page.wait_for_function(
        """([height, start]) => {
            const video = document.querySelector("video");
            return video.videoHeight === height && video.currentTime > start + 0.5;
        }""",
        arg=[other, start],
        timeout=20_000,
    )


def test_package_plays_in_hls_js_and_dash_js(
    page: Any, live_server: LiveServer, clip4s: Path, requested: list[str], other_origin: str
) -> None:
    job = convert(live_server, clip4s, **PACKAGE)
    manifests = job["result"]["manifests"]
    assert set(manifests) == {"hls", "dash"}
    for url in manifests.values():
        assert url.startswith(job["result"]["base_url"]), "manifests are absolute signed URLs"

    # hls.js, from another origin: the signed files answer with CORS, no key is sent.
    open_blank_page(page, other_origin, live_server.url + HLS_JS)
    assert page.evaluate("Hls.isSupported()")
    hls = page.evaluate(PLAY_HLS, manifests["hls"])
    assert sorted(hls["heights"]) == [120, 180] and hls["audioTracks"] == 1
    wait_playing(page)
    switch_rendition(page, "(index) => { window.player.currentLevel = index; }", hls["heights"])
    # ... and plays to its end (a last audio segment past the video's end would stall it).
    page.wait_for_function("document.querySelector('video').ended", timeout=20_000)
    page.evaluate("window.player.destroy()")

    # dash.js, the same way.
    open_blank_page(page, other_origin, live_server.url + DASH_JS)
    dash = page.evaluate(PLAY_DASH, manifests["dash"])
    assert sorted(dash["heights"]) == [120, 180] and dash["audio"] == 1
    wait_playing(page)
    switch_rendition(
        page,
        """(index) => {
            window.player.updateSettings({streaming: {abr: {autoSwitchBitrate: {video: false}}}});
            window.player.setRepresentationForTypeByIndex("video", index, true);
        }""",
        dash["heights"],
    )
    page.wait_for_function("document.querySelector('video').ended", timeout=20_000)
    page.evaluate("window.player.reset()")

    assert any("/seg_" in url for url in requested), "segments came through the signed URLs"
    assert_stayed_home(requested)


def sign_in(page: Any, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    page.goto(live_server.url + "/")
    page.get_by_label("API key", exact=True).fill(live_server.key)
    page.get_by_role("button", name="Use key").click()
    expect(page.get_by_role("button", name="Drop video files here")).to_be_visible()


def row_of(page: Any, job: dict[str, Any]) -> Any:
    return page.locator(f'#jobs tbody tr[data-job-id="{job["id"]}"]')


def play(page: Any, job: dict[str, Any], control: str = "Play") -> Any:
    """Press the job's Play (or Show) control; the player section, once it shows."""
    from playwright.sync_api import expect

    row = row_of(page, job)
    expect(row.locator(".status")).to_have_text("completed")
    row.get_by_role("button", name=control).click()
    player = page.locator("#player-section")
    expect(player).to_be_visible()
    return player


def test_page_plays_a_package_with_poster_and_storyboard(
    page: Any, live_server: LiveServer, clip4s: Path, requested: list[str]
) -> None:
    from playwright.sync_api import expect

    job = convert(live_server, clip4s, **PACKAGE)
    dash_job = convert(live_server, clip4s, preset="dash", segment_seconds="2")
    assert set(dash_job["result"]["manifests"]) == {"dash"}
    base_url = job["result"]["base_url"]
    sign_in(page, live_server)

    player = play(page, job)
    expect(player.get_by_role("heading")).to_have_text("Playing four.mp4")
    video = player.locator("video")
    expect(video).to_have_attribute("poster", base_url + "poster.jpg")
    expect(video).to_have_attribute("aria-label", job["result"]["filename"])
    expect(video).to_be_focused()
    wait_playing(page, "#player video")
    assert page.evaluate("document.querySelector('#player video').vidqHls.levels.length") == 2
    assert any(url.startswith(base_url) and "/seg_" in url for url in requested)

    # The storyboard: the pointer over the seek bar shows the tile of that time.
    scrub = player.get_by_role("slider", name="Seek, with a preview picture")
    expect(scrub).to_be_visible()
    preview = player.locator(".scrub-preview")
    tile = player.locator(".scrub-tile")
    box = scrub.bounding_box()
    assert box is not None
    positions = []
    for fraction in (0.1, 0.9):
        page.mouse.move(box["x"] + fraction * box["width"], box["y"] + box["height"] / 2)
        expect(preview).to_be_visible()
        positions.append(tile.evaluate("node => getComputedStyle(node).backgroundPosition"))
    assert positions[0] == "0px 0px", positions
    assert positions[1] != positions[0], "a later time shows a later tile"
    image = tile.evaluate("node => getComputedStyle(node).backgroundImage")
    assert image == f'url("{base_url}storyboard.jpg")'
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] - 200)
    expect(preview).to_be_hidden()
    # A click on the bar seeks there; the keys do too, with the preview for the new time.
    page.mouse.click(box["x"] + 0.25 * box["width"], box["y"] + box["height"] / 2)
    page.wait_for_function("document.querySelector('#player video').currentTime < 2")
    scrub.press("End")
    expect(preview).to_be_visible()
    expect(scrub).to_have_attribute("aria-valuenow", "4")

    # Close: the player stops and goes, focus returns to the Play control.
    player.get_by_role("button", name="Close").click()
    expect(player).to_be_hidden()
    expect(page.locator("#player video")).to_have_count(0)
    expect(row_of(page, job).get_by_role("button", name="Play")).to_be_focused()

    # A DASH-only package plays through dash.js.
    player = play(page, dash_job)
    wait_playing(page, "#player video")
    assert page.evaluate("!!document.querySelector('#player video').vidqDash")
    assert dash_job["result"]["manifests"]["dash"] in requested
    assert_stayed_home(requested)


def test_page_plays_single_files(
    page: Any, live_server: LiveServer, clip4s: Path, requested: list[str]
) -> None:
    from playwright.sync_api import expect

    video_job = convert(live_server, clip4s, preset="mp4-h264")
    sound_job = convert(live_server, clip4s, preset="m4a")
    still_job = convert(live_server, clip4s, preset="poster")
    sign_in(page, live_server)

    # A single video file plays from its download_url in a plain <video>; no poster asked.
    player = play(page, video_job)
    video = player.locator("video")
    expect(video).to_have_attribute("src", video_job["result"]["download_url"])
    assert video.get_attribute("poster") is None
    wait_playing(page, "#player video")
    expect(player.get_by_role("slider")).to_have_count(0)  # no storyboard: no preview bar

    # Sound only: an <audio> element.
    player = play(page, sound_job)
    expect(player.locator("video")).to_have_count(0)
    expect(player.locator("audio")).to_have_attribute("src", sound_job["result"]["download_url"])
    wait_playing(page, "#player audio", past=0.5)

    # The poster preset's still: an image, shown rather than played.
    player = play(page, still_job, control="Show")
    image = player.get_by_role("img")
    expect(image).to_have_attribute("src", still_job["result"]["download_url"])
    page.wait_for_function("document.querySelector('#player img').naturalWidth === 320")
    player.get_by_role("button", name="Close").click()
    expect(player).to_be_hidden()
    players = ("/vendor/hls/", "/vendor/dashjs/")
    assert not any(p in url for url in requested for p in players), "players: only for packages"
    assert_stayed_home(requested)


def test_vendored_players_are_served(live_server: LiveServer) -> None:
    """The bundled players come from the service itself, with their licences and versions."""
    for folder, script, name in (
        ("hls", HLS_JS, "hls.js"),
        ("dashjs", DASH_JS, "dashjs"),
    ):
        answer = httpx.get(live_server.url + script, timeout=10)
        assert answer.status_code == 200 and "javascript" in answer.headers["content-type"]
        version = httpx.get(f"{live_server.url}/static/vendor/{folder}/VERSION", timeout=10)
        assert version.text.startswith(f"{name} ")

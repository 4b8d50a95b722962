"""The warm probe child: started ahead of need, one file each, nothing left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from vidq.config import Settings
from vidq.errors import UnsupportedMedia
from vidq.media import probe as probe_module
from vidq.media.probe import WarmProber, probe

from .helpers import wait_for
from .media_clips import make_clip

MIB = 1024**2
REAL_CHILD = Path(probe_module.__file__).with_name("_probe_child.py")

# A stand-in for the probe child: the real one (PyAV imported before the request comes),
# except that it crashes on a file named crash.mp4 and hangs on one named hang.mp4, as a
# demuxer or decoder might on a hostile file.
STAND_IN = f"""
import io, json, os, signal, sys, time
sys.path.insert(0, {str(REAL_CHILD.parent)!r})
import _probe_child
raw = sys.stdin.buffer.read()
name = os.path.basename(json.loads(raw)["path"])
if name == "crash.mp4":
    os.kill(os.getpid(), signal.SIGSEGV)
if name == "hang.mp4":
    time.sleep(3600)
sys.stdin = io.TextIOWrapper(io.BytesIO(raw))
os._exit(_probe_child.main())
"""


def probe_children() -> list[psutil.Process]:
    """This process's probe children that still run (not zombies)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and any(
                "probe" in part for part in child.cmdline()
            ):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def spare_pids() -> list[int]:
    """The pids of the probe children alive now: between probes, only the spare."""
    return [p.pid for p in probe_children()]


def has_imported_av(pid: int) -> bool:
    try:
        return any("libavformat" in m.path for m in psutil.Process(pid).memory_maps())
    except psutil.Error:
        return False


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    good = make_clip(folder / "good.mp4", seconds=1.0)
    for name in ("crash.mp4", "hang.mp4"):
        (folder / name).write_bytes(good.read_bytes())
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, probe_timeout_seconds=20)


def _install(monkeypatch: pytest.MonkeyPatch, prober: WarmProber) -> Iterator[WarmProber]:
    monkeypatch.setattr(probe_module, "_prober", prober)
    try:
        yield prober
    finally:
        prober.close()
        assert not probe_children(), "a probe child outlived close()"


@pytest.fixture
def prober(monkeypatch: pytest.MonkeyPatch) -> Iterator[WarmProber]:
    """A WarmProber of its own for the test, with the real child; closed and checked after."""
    yield from _install(monkeypatch, WarmProber())


@pytest.fixture
def flaky_prober(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[WarmProber]:
    """A WarmProber whose children crash on crash.mp4 and hang on hang.mp4."""
    script = tmp_path / "stand_in_probe_child.py"
    script.write_text(STAND_IN)
    yield from _install(monkeypatch, WarmProber(script))


async def test_the_next_probe_gets_a_child_that_has_already_imported_av(
    prober: WarmProber, clips: Path, settings: Settings
) -> None:
    first = await probe(clips / "good.mp4", settings)
    wait_for(lambda: len(spare_pids()) == 1)
    (spare,) = spare_pids()
    wait_for(lambda: has_imported_av(spare))  # started ahead, waiting on stdin
    second = await probe(clips / "good.mp4", settings)
    assert second == first
    assert not psutil.pid_exists(spare) or psutil.Process(spare).status() == psutil.STATUS_ZOMBIE
    wait_for(lambda: len(spare_pids()) == 1)
    assert spare_pids() != [spare]  # a new spare took its place


async def test_a_crash_costs_only_that_request(
    flaky_prober: WarmProber, clips: Path, settings: Settings
) -> None:
    await probe(clips / "good.mp4", settings)  # a spare is now waiting
    with pytest.raises(UnsupportedMedia, match="prober failed"):
        await probe(clips / "crash.mp4", settings)
    info = await probe(clips / "good.mp4", settings)
    assert info.video is not None and info.duration_seconds == pytest.approx(1.0, abs=0.1)
    wait_for(lambda: len(spare_pids()) == 1)  # the spare, nothing else


async def test_a_hang_costs_only_that_request_and_the_timeout(
    flaky_prober: WarmProber, clips: Path, tmp_path: Path, settings: Settings
) -> None:
    await probe(clips / "good.mp4", settings)
    wait_for(lambda: len(spare_pids()) == 1)
    (hung,) = spare_pids()  # the child the next request gets
    short = Settings(data_dir=tmp_path, probe_timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(UnsupportedMedia, match=r"longer than 0\.5 s"):
        await probe(clips / "hang.mp4", short)
    assert 0.5 <= time.monotonic() - started < 2
    assert not psutil.pid_exists(hung)  # killed and reaped
    assert (await probe(clips / "good.mp4", settings)).video is not None


async def test_cancelling_a_probe_kills_its_child(
    flaky_prober: WarmProber, clips: Path, settings: Settings
) -> None:
    await probe(clips / "good.mp4", settings)
    wait_for(lambda: len(spare_pids()) == 1)
    (hung,) = spare_pids()
    task = asyncio.create_task(probe(clips / "hang.mp4", settings))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not psutil.pid_exists(hung)


async def test_a_spare_that_died_idle_is_replaced(
    prober: WarmProber, clips: Path, settings: Settings
) -> None:
    await probe(clips / "good.mp4", settings)
    wait_for(lambda: len(spare_pids()) == 1)
    (spare,) = spare_pids()
    os.kill(spare, signal.SIGKILL)  # never saw a file: not the next upload's fault
    wait_for(lambda: psutil.Process(spare).status() == psutil.STATUS_ZOMBIE)
    assert (await probe(clips / "good.mp4", settings)).video is not None


async def test_a_spare_under_other_limits_is_not_used(
    prober: WarmProber, clips: Path, tmp_path: Path, settings: Settings
) -> None:
    await probe(clips / "good.mp4", settings)  # the spare has the default 4 GiB limit
    tight = Settings(data_dir=tmp_path, ffmpeg_memory_bytes=16 * MIB)
    with pytest.raises(UnsupportedMedia, match="prober failed"):  # too little to start Python
        await probe(clips / "good.mp4", tight)
    assert (await probe(clips / "good.mp4", settings)).video is not None


async def test_probes_at_once_each_get_a_child(
    prober: WarmProber, clips: Path, settings: Settings
) -> None:
    infos = await asyncio.gather(*(probe(clips / "good.mp4", settings) for _ in range(4)))
    assert len(set(infos)) == 1 and infos[0].video is not None
    wait_for(lambda: len(spare_pids()) == 1)


async def test_close_leaves_no_child_and_probing_starts_again(
    prober: WarmProber, clips: Path, settings: Settings
) -> None:
    await probe(clips / "good.mp4", settings)
    prober.close()
    assert not probe_children()
    prober.close()  # twice is fine
    assert (await probe(clips / "good.mp4", settings)).video is not None
    prober.close()
    assert not probe_children()


def test_one_spare_serves_every_event_loop(
    prober: WarmProber, clips: Path, settings: Settings
) -> None:
    # `asyncio.run` twice: the spare started under the first loop serves the second.
    first = asyncio.run(probe(clips / "good.mp4", settings))
    wait_for(lambda: len(spare_pids()) == 1)
    (spare,) = spare_pids()
    second = asyncio.run(probe(clips / "good.mp4", settings))
    assert first == second
    assert spare not in spare_pids()

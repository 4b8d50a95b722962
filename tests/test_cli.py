"""The `vidq` command as a person meets it: the real command in a pseudo-terminal against a
real server, read back through a terminal emulator (what the screen shows at the end),
plus the raw stream (what it showed along the way)."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pexpect
import pyte
import pytest

from vidq.client import JobDeleted, VidqClient, parse_events
from vidq.jobs.accounts import hash_key, key_id_of

from .conftest import LiveServer, free_port, module_server
from .helpers import wait_for
from .processes import VIDQ

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
COLUMNS, LINES = 150, 50


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module: every test here talks to it as a separate user would."""
    with module_server(tmp_path_factory.mktemp("cli-server")) as live:
        yield live


@pytest.fixture
def env(server: LiveServer) -> dict[str, str]:
    """The environment of a user who set VIDQ_URL and VIDQ_KEY."""
    return {
        **os.environ,
        "VIDQ_URL": server.url,
        "VIDQ_KEY": server.key,
        "TERM": "xterm-256color",
    }


@dataclass
class Seen:
    """A run of the command in a terminal."""

    stream: str  # everything it wrote, escape codes removed: every frame of every bar
    screen: list[str]  # the screen's non-empty lines once it ended
    status: int


def in_terminal(
    *args: str, env: dict[str, str], cwd: Path, answer: tuple[str, str] | None = None
) -> Seen:
    """Run `vidq ARGS` in a pseudo-terminal; with `answer` (when, what), interrupt it with
    Ctrl-C once `when` appears and answer its question with `what`."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "vidq.cli.main", *args],
        env=env,
        cwd=str(cwd),
        encoding="utf-8",
        timeout=60,
        dimensions=(LINES, COLUMNS),
    )
    child.logfile_read = io.StringIO()
    if answer is not None:
        when, what = answer
        child.expect(when)
        child.sendintr()
        child.expect(r"\[y/N\]")
        child.sendline(what)
    child.expect(pexpect.EOF)
    child.close()
    raw = child.logfile_read.getvalue()
    screen = pyte.Screen(COLUMNS, LINES)
    pyte.Stream(screen).feed(raw)
    lines = [line.rstrip() for line in screen.display if line.strip()]
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}"
    return Seen(ANSI.sub("", raw), lines, child.exitstatus)


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `vidq ARGS` as a script would: pipes, no terminal."""
    return subprocess.run(
        [*VIDQ, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_convert_shows_each_file_move_and_says_what_it_saved(
    server: LiveServer, env: dict[str, str], long_clip: Path, clip: Path, tmp_path: Path
) -> None:
    small = shutil.copy(clip, tmp_path / "small.mp4")
    seen = in_terminal(
        "convert", str(long_clip), str(small), "--preset", "webm-vp9", "--wait",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert seen.status == 0, seen.screen
    # Each file had its own row: upload, queue, conversion with a moving percentage.
    assert re.search(r"long\.mp4 .*uploading", seen.stream)
    assert re.search(r"small\.mp4 .*(queued|converting)", seen.stream)
    percents = {int(p) for p in re.findall(r"long\.mp4 [^\n\r]*?(\d+)%", seen.stream)}
    assert len(percents) >= 3, f"the bar did not move: {sorted(percents)}"
    # The rows are gone; each file's job was named, and the last lines say what was saved where.
    assert any("long.mp4: job " in line for line in seen.screen)
    assert "Traceback" not in seen.stream
    saved = [line for line in seen.screen if line.startswith("Saved ")]
    assert len(saved) == 2 and seen.screen[-1] == saved[-1]
    for name in ("long.webm", "small.webm"):
        line = next(line for line in saved if line.startswith(f"Saved {name} "))
        assert line.endswith(f" in {tmp_path.resolve()}")
        assert (tmp_path / name).stat().st_size > 0
    # The input beside its output is never overwritten: a second run names its output -1.
    again = in_terminal(
        "convert", str(small), "--preset", "webm-vp9", "--wait", env=env, cwd=tmp_path
    )
    assert again.screen[-1].startswith("Saved small-1.webm ")
    assert (tmp_path / "small-1.webm").is_file()


def test_ctrl_c_asks_whether_to_cancel_the_job(
    server: LiveServer, env: dict[str, str], long_clip: Path, tmp_path: Path
) -> None:
    seen = in_terminal(
        "convert", str(long_clip), "--preset", "webm-vp9", "-o", str(tmp_path / "out.webm"),
        env=env, cwd=tmp_path, answer=("queued|converting", "y"),
    )  # fmt: skip
    assert seen.status == 130
    job_id = re.search(r"cancelled job ([0-9a-f-]{36})", seen.stream)
    assert job_id, seen.stream[-500:]
    with server.client() as client:
        assert client.get(f"/job/{job_id[1]}").json()["status"] == "cancelled"
    assert not (tmp_path / "out.webm").exists()
    assert "Traceback" not in seen.stream


@pytest.mark.parametrize(
    ("case", "status", "says"),
    [
        ("missing input file", 2, "nothing.mp4: no such file"),
        ("missing output folder", 2, "does not exist"),
        ("unreachable server", 3, "Cannot connect to http://127.0.0.1:"),
        ("bad option", 2, "crf"),
        ("unknown job", 2, "No job"),
        ("download of an unknown job", 2, "No job"),
        ("refused key", 3, "refused the API key"),
        ("usage", 2, "vidq convert: the following arguments are required"),
    ],
)
def test_each_user_error_is_one_line_and_its_status(
    case: str,
    status: int,
    says: str,
    server: LiveServer,
    env: dict[str, str],
    clip: Path,
    tmp_path: Path,
) -> None:
    unknown = str(uuid.uuid4())
    args = {
        "missing input file": ["convert", "nothing.mp4", "--wait"],
        "missing output folder": ["convert", str(clip), "-o", "no-such-folder/out.mp4"],
        "unreachable server": ["jobs"],
        "bad option": ["convert", str(clip), "--option", "crf=99", "--wait"],
        "unknown job": ["status", unknown],
        "download of an unknown job": ["download", unknown, "."],
        "refused key": ["jobs", "--key", "vq_not-a-key"],
        "usage": ["convert"],
    }[case]
    if case == "unreachable server":
        port = free_port()  # nothing listens there
        env = {**env, "VIDQ_URL": f"http://127.0.0.1:{port}"}
    seen = in_terminal(*args, env=env, cwd=tmp_path)
    assert seen.status == status, seen.screen
    assert "Traceback" not in seen.stream
    assert len(seen.screen) == 1, seen.screen
    assert seen.screen[0].startswith("vidq") and says in seen.screen[0], seen.screen
    if case == "unreachable server":
        assert f"http://127.0.0.1:{port}" in seen.screen[0] and "--url" in seen.screen[0]


def test_json_is_for_scripts(
    server: LiveServer, env: dict[str, str], clip: Path, tmp_path: Path
) -> None:
    converted = run(
        "convert", str(clip), "--preset", "gif", "--wait", "--json", env=env, cwd=tmp_path
    )
    assert converted.returncode == 0, converted.stderr
    job = json.loads(converted.stdout)  # one document, nothing else on standard output
    assert job["status"] == "completed" and (tmp_path / job["result"]["filename"]).is_file()
    listed = json.loads(run("jobs", "--json", env=env, cwd=tmp_path).stdout)
    assert job["id"] in [j["id"] for j in listed["jobs"]]
    shown = json.loads(run("status", job["id"], "--json", env=env, cwd=tmp_path).stdout)
    assert shown["id"] == job["id"]
    presets = json.loads(run("presets", "--json", env=env, cwd=tmp_path).stdout)
    assert "mp4-h264" in [p["name"] for p in presets["presets"]]
    folder = tmp_path / "downloads"
    folder.mkdir()
    saved = json.loads(
        run("download", job["id"], str(folder), "--json", env=env, cwd=tmp_path).stdout
    )
    assert Path(saved["path"]) == folder / job["result"]["filename"]
    refused = run("status", str(uuid.uuid4()), "--json", env=env, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""


def test_the_server_and_key_are_found_as_vidq_serve_left_them(
    server: LiveServer, clip: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "vidq-data"
    data_dir.mkdir()
    (data_dir / "api-key").write_text(server.key + "\n")
    port = server.url.rsplit(":", 1)[1]
    env = {**os.environ, "TERM": "xterm-256color", "VIDQ_PORT": port}
    # `vidq serve` on VIDQ_PORT, its key in ./vidq-data/api-key: nothing else to say.
    seen = in_terminal("convert", str(clip), "--wait", env=env, cwd=tmp_path)
    assert seen.status == 0 and seen.screen[-1].startswith("Saved clip.mp4 "), seen.screen
    job_id = re.search(r"clip\.mp4: job ([0-9a-f-]{36})", seen.stream)
    assert job_id
    table = in_terminal("jobs", env=env, cwd=tmp_path)
    assert table.status == 0
    assert table.screen[0].split() == ["JOB", "FILE", "PRESET", "STATUS", "PROGRESS", "AGE"]
    assert any(line.startswith(job_id[1]) and "completed" in line for line in table.screen)
    # download JOB . is the output's own name here, never over a file already there.
    again = in_terminal("download", job_id[1], ".", env=env, cwd=tmp_path)
    assert len(again.screen) == 1 and again.screen[0].startswith("Saved clip-1.mp4 (")
    assert again.screen[0].endswith(f" in {tmp_path.resolve()}")
    assert (tmp_path / "clip-1.mp4").read_bytes() == (tmp_path / "clip.mp4").read_bytes()


def test_keys_list_never_shows_a_key_and_revoke_refuses_it(
    server: LiveServer, tmp_path: Path
) -> None:
    carol = server.new_key("carol")
    assert (
        httpx.get(server.url + "/presets", headers={"Authorization": f"Bearer {carol}"}).status_code
        == 200
    )
    env = {**os.environ, "VIDQ_DATA_DIR": str(server.settings.data_dir), "TERM": "xterm-256color"}
    listed = in_terminal("keys", "list", env=env, cwd=tmp_path)
    assert listed.status == 0
    assert listed.screen[0].split() == ["OWNER", "KEY", "ID", "CREATED", "LAST", "USED"]
    for key in (carol, server.key):
        assert key not in listed.stream and hash_key(key) not in listed.stream
    carol_id = key_id_of(hash_key(carol))
    row = next(line for line in listed.screen if carol_id in line)
    assert row.startswith("carol ") and row.endswith(" ago")  # just used
    revoked = in_terminal("keys", "revoke", carol_id, env=env, cwd=tmp_path)
    assert revoked.status == 0 and carol_id in revoked.screen[0]
    headers = {"Authorization": f"Bearer {carol}"}
    assert httpx.get(server.url + "/presets", headers=headers).status_code == 401
    assert (
        httpx.get(
            server.url + "/presets", headers={"Authorization": f"Bearer {server.key}"}
        ).status_code
        == 200
    )
    as_json = json.loads(run("keys", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert carol_id not in [k["key_id"] for k in as_json["keys"]]
    again = in_terminal("keys", "revoke", carol_id, env=env, cwd=tmp_path)
    assert again.status == 2 and len(again.screen) == 1 and "Traceback" not in again.stream


def test_follow_reads_the_events_stream_or_polls(server: LiveServer, clip: Path) -> None:
    with VidqClient(server.url, server.key) as client:
        job = client.convert(clip, preset="gif")
        seen = list(client.follow(job["id"]))
        assert seen[-1]["status"] == "completed"
        has_stream = (
            "/job/{job_id}/events" in httpx.get(server.url + "/openapi.json").json()["paths"]
        )
        assert client.followed_by == ("events" if has_stream else "polling")


def test_follow_falls_back_to_polling_on_404() -> None:
    job = {"id": "j", "status": "running", "progress_percent": 50.0}
    answers = iter([job, {**job, "status": "completed", "progress_percent": 100.0}])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(404, json={"code": "not_found", "detail": "Not Found"})
        return httpx.Response(200, json=next(answers))

    with VidqClient("http://vidq.test", "k", transport=httpx.MockTransport(handler)) as client:
        assert [j["status"] for j in client.follow("j")] == ["running", "completed"]
        assert client.followed_by == "polling"


def test_follow_reads_server_sent_events() -> None:
    def event(job: dict[str, object]) -> str:
        return f'event: job\nid: "e{job["progress_percent"]}"\ndata: {json.dumps(job)}\n\n'

    running = {"id": "j", "status": "running", "progress_percent": 10.0}
    body = (
        ": keep-alive\n\n"
        + event(running)
        + event({**running, "progress_percent": 60.0})
        + event({**running, "status": "completed", "progress_percent": 100.0})
    )

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/job/j/events"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=body)

    with VidqClient("http://vidq.test", "k", transport=httpx.MockTransport(handler)) as client:
        assert [j["progress_percent"] for j in client.follow("j")] == [10.0, 60.0, 100.0]
        assert client.followed_by == "events"


def test_event_stream_parsing_follows_the_standard() -> None:
    lines = [
        ": comment",
        "event: job",
        "data: {",
        "data: }",
        "id: 7",
        "",
        "data:x",
        "",
        "data: lost",
    ]
    events = list(parse_events(lines))
    assert [(e.event, e.data, e.id) for e in events] == [
        ("job", "{\n}", "7"),
        ("message", "x", "7"),
    ]


def test_last_use_is_written_at_most_once_a_minute(server: LiveServer) -> None:
    dave = server.new_key("dave")
    headers = {"Authorization": f"Bearer {dave}"}
    env = {**os.environ, "VIDQ_DATA_DIR": str(server.settings.data_dir)}

    def last_used() -> str | None:
        listed = json.loads(run("keys", "list", "--json", env=env, cwd=Path.cwd()).stdout)
        key_id = key_id_of(hash_key(dave))
        value: str | None = next(k for k in listed["keys"] if k["key_id"] == key_id)["last_used_at"]
        return value

    assert last_used() is None
    assert httpx.get(server.url + "/presets", headers=headers).status_code == 200
    wait_for(lambda: last_used() is not None, 5, "the key's last use")
    first = last_used()
    assert httpx.get(server.url + "/presets", headers=headers).status_code == 200
    assert last_used() == first


def test_follow_says_when_the_job_is_deleted() -> None:
    running = {"id": "j", "status": "running", "progress_percent": 10.0}
    body = f'event: job\ndata: {json.dumps(running)}\n\nevent: deleted\ndata: {{"id": "j"}}\n\n'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=body)

    with VidqClient("http://vidq.test", "k", transport=httpx.MockTransport(handler)) as client:
        followed = client.follow("j")
        assert next(followed)["status"] == "running"
        with pytest.raises(JobDeleted):
            next(followed)


def test_every_command_and_option_has_help_with_examples() -> None:
    from vidq.cli.main import build_parser

    def commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from commands(sub)
                return
        yield parser

    found = list(commands(build_parser()))
    assert {p.prog for p in found} >= {"vidq convert", "vidq watch", "vidq keys revoke"}
    for parser in found:
        assert "example" in (parser.epilog or ""), parser.prog
        undocumented = [a.dest for a in parser._actions if not a.help]
        assert undocumented == [], parser.prog

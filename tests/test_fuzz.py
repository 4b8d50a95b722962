"""Fuzzing from the contract: schemathesis runs the live server's /openapi.json against it.

Every operation is called with generated requests, valid and invalid (coverage of each
schema's edges, random fuzzing, stateful sequences), and every answer is checked: never a
5xx, a status code and content type the document lists, a body that fits its schema,
headers as documented, auth that is really required, invalid data refused, a deleted job
gone. Only `positive_data_acceptance` is left out: a schema cannot say that a file is a
video, which preset combinations make sense, or which cursor the server gave out, so
schema-valid requests the server rightly refuses are not faults.

A short run is part of `make test`; `make fuzz` selects the long one (`-m fuzz`), which the
default `addopts` deselect. The runs go through the schemathesis command, as a user would
run it, in the test's own directory (its caches stay there).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import LiveServer, make_settings, running_server
from .helpers import submit_job, wait_done


@pytest.fixture
def fuzzed(tmp_path: Path, clip: Path) -> Iterator[tuple[LiveServer, Path]]:
    """A live server holding two finished jobs, and a schemathesis config naming them.

    Operations on one job get a real id, so the fuzzer reaches past `404`: one job to
    read, follow (a finished job's stream ends after one event), cancel (409), download
    and fetch files of, another for DELETE (then `404`: use-after-free). GET /jobs/events
    is left out: it stays open until the client leaves.
    """
    with running_server(make_settings(tmp_path)) as live, live.client() as client:
        kept, doomed = (
            wait_done(client, submit_job(client, clip, preset=preset)["id"])
            for preset in ("gif", "mp4-h264")
        )
        assert kept["status"] == doomed["status"] == "completed"
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            "[[operations]]\n"
            'include-name = ["GET /job/{job_id}", "POST /job/{job_id}/cancel",'
            ' "GET /job/{job_id}/output", "HEAD /job/{job_id}/output",'
            ' "GET /job/{job_id}/files/{path}", "HEAD /job/{job_id}/files/{path}",'
            ' "GET /job/{job_id}/events"]\n'
            f'parameters = {{ job_id = "{kept["id"]}" }}\n\n'
            "[[operations]]\n"
            'include-name = "DELETE /job/{job_id}"\n'
            f'parameters = {{ job_id = "{doomed["id"]}" }}\n\n'
            # The stream of all jobs stays open by design: a request of it never ends.
            "[[operations]]\n"
            'include-name = "GET /jobs/events"\n'
            "enabled = false\n"
        )
        yield live, config


def run_schemathesis(live: LiveServer, config: Path, *options: str, timeout: float) -> None:
    """Run `schemathesis run` on the live server's document; fail with its report."""
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{live.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {live.key}",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--generation-database",
        "none",
        # One worker: with two, hypothesis describes filter lambdas with ast.parse in two
        # threads at once, which CPython 3.11 can fail with "SystemError: AST constructor
        # recursion depth mismatch" (a runtime error of the fuzzer, not a finding); the
        # more operations the document has, the likelier (1 run in 3 with /uploads).
        "--workers",
        "1",
        *options,
    ]
    done = subprocess.run(
        argv, cwd=config.parent, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-4000:]


def test_fuzz_short(fuzzed: tuple[LiveServer, Path]) -> None:
    """A bounded run with a fixed seed: a few hundred requests, part of every test run."""
    live, config = fuzzed
    run_schemathesis(live, config, "--max-examples", "10", "--seed", "20261126", timeout=100)
    with live.client() as client:
        assert client.get("/healthz").status_code == 200


@pytest.mark.fuzz
@pytest.mark.timeout(900)
def test_fuzz_long(fuzzed: tuple[LiveServer, Path]) -> None:
    """`make fuzz`: every phase, fresh random data, for a five-minute budget."""
    live, config = fuzzed
    run_schemathesis(live, config, "--max-examples", "200", "--max-time", "300", timeout=800)
    with live.client() as client:
        assert client.get("/healthz").status_code == 200

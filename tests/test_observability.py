"""What logs and /metrics show: no bearer secrets in logs, totals only to those allowed."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from vidq.logs import install_redaction, redact

from .conftest import make_settings, running_server
from .helpers import assert_problem


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('"GET /job/j/output?expires=1&signature=AbC_-09 HTTP/1.1" 200', "AbC_-09"),
        ("/job/j/output?signature=xyz&expires=1", "xyz"),
        ("/job/j/output?SIGNATURE=xyz", "xyz"),
        ("https://host/s/tok3n.value/720p/seg_00001.m4s", "tok3n.value"),
        ("/s/abc/master.m3u8?token=def", "def"),
        ("GET /anything?key=sk_live_1", "sk_live_1"),
    ],
)
def test_redact_masks_every_url_secret(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked and "[redacted]" in masked


def test_redaction_applies_to_records_of_every_logger(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()
    install_redaction()  # idempotent
    access = logging.getLogger("uvicorn.access")
    propagate = access.propagate
    access.propagate = True  # so that caplog, a handler of the root logger, sees it
    try:
        # An earlier test's server may have left uvicorn's loggers at its own level.
        with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger=access.name):
            logging.getLogger("vidq.test").info("fetched %s", "/job/j/output?signature=s3cr3t")
            access.info('%s "%s %s"', "1.2.3.4", "GET", "/x?signature=s3cr3t")
    finally:
        access.propagate = propagate
    messages = [(r.name, r.getMessage()) for r in caplog.records]
    assert not [m for m in messages if "s3cr3t" in m[1]]
    assert {name for name, m in messages if "[redacted]" in m} == {"vidq.test", "uvicorn.access"}


def test_metrics_token_is_the_only_credential_for_metrics(tmp_path: Path) -> None:
    token = "operator-metrics-token"
    with running_server(make_settings(tmp_path, metrics_token=token)) as live:
        with live.client() as owner:
            assert_problem(owner.get("/metrics"), 401, "unauthorized")
            assert owner.get("/presets").status_code == 200, "the owner's key works elsewhere"
        assert_problem(httpx.get(live.url + "/metrics"), 401, "unauthorized")
        wrong = httpx.get(live.url + "/metrics", headers={"Authorization": "Bearer nope"})
        assert_problem(wrong, 401, "unauthorized")
        good = httpx.get(live.url + "/metrics", headers={"Authorization": f"Bearer {token}"})
        assert good.status_code == 200 and "vidq_jobs" in good.text
        assert "owner" not in good.text, "no per-owner labels"

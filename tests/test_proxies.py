"""Proxies and Host: X-Forwarded-* only from the proxies VIDQ_FORWARDED_ALLOW_IPS names,
and a warning when links would follow the Host header of clients beyond this machine."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from vidq.api.connections import ConnectionLimits
from vidq.api.serving import is_loopback, log_exposure
from vidq.config import Settings

from .conftest import make_settings, running_server
from .helpers import api_client, submit_job, wait_done

FORWARDED = {
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.7",
}


def download_url(url: str, key: str, clip: Path, headers: dict[str, str]) -> str:
    """The download_url of a finished job, as an answer to a request with `headers`."""
    with api_client(url, key) as client:
        job = submit_job(client, clip)
        wait_done(client, job["id"])
        answer = client.get(f"/job/{job['id']}", headers=headers)
    assert answer.status_code == 200, answer.text
    link: str = answer.json()["result"]["download_url"]
    return link


def test_forwarded_headers_from_an_untrusted_peer_change_nothing(
    tmp_path: Path, clip: Path
) -> None:
    with running_server(make_settings(tmp_path)) as live:
        link = download_url(live.url, live.key, clip, FORWARDED)
        assert link.startswith(live.url + "/job/")
        # Without VIDQ_PUBLIC_URL the Host header decides, for the client that sent it.
        other = download_url(live.url, live.key, clip, {"Host": "video.example:8443"})
        assert other.startswith("http://video.example:8443/job/")


def test_a_trusted_proxy_sets_the_scheme_but_never_the_host(tmp_path: Path, clip: Path) -> None:
    settings = make_settings(tmp_path, forwarded_allow_ips="127.0.0.1")
    with running_server(settings) as live:
        link = download_url(live.url, live.key, clip, FORWARDED)
        assert link.startswith(live.url.replace("http://", "https://") + "/job/")


def test_forwarded_allow_ips_must_name_addresses() -> None:
    assert Settings(forwarded_allow_ips=" 127.0.0.1 , 10.0.0.0/8,::1 ").forwarded_allow_ips == (
        "127.0.0.1,10.0.0.0/8,::1"
    )
    assert Settings(forwarded_allow_ips="*").forwarded_allow_ips == "*"
    assert Settings().forwarded_allow_ips == ""
    for bad in ("10.0.0.0/33", "proxy.internal", "127.0.0.1;10.0.0.1"):
        with pytest.raises(ValidationError, match="forwarded_allow_ips"):
            Settings(forwarded_allow_ips=bad)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("video.internal", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("host", "public_url", "warned"),
    [
        ("0.0.0.0", None, True),
        ("0.0.0.0", "https://video.example.com", False),
        ("127.0.0.1", None, False),
    ],
)
def test_listening_beyond_loopback_without_a_public_url_is_warned(
    caplog: pytest.LogCaptureFixture, host: str, public_url: str | None, warned: bool
) -> None:
    settings = Settings(host=host, public_url=public_url)
    with caplog.at_level(logging.INFO, logger="vidq"):
        log_exposure(settings, ConnectionLimits.for_settings(settings, open_files=1024))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warnings) is warned
    if warned:
        assert "VIDQ_PUBLIC_URL" in warnings[0] and host in warnings[0]
    assert "at most 480 connections and 60 uploads" in caplog.text

"""Webhook targets: only public http(s) addresses, checked at submission and again at delivery.

Every refused URL here names a loopback host (or a literal address that is refused
before any packet could leave); no test sends traffic anywhere but loopback.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from vidq.config import Settings
from vidq.db.database import Database
from vidq.db.models import Notification
from vidq.errors import InvalidOption
from vidq.jobs.accounts import create_owner
from vidq.jobs.fields import check_webhook_url
from vidq.notify.notifier import Notifier
from vidq.outbound.targets import AddressPolicy, is_public_address, resolve_target

from .conftest import LiveServer
from .notify_receivers import WebhookReceiver, finished_job

PUBLIC_ONLY = AddressPolicy()
ANY_ADDRESS = AddressPolicy(allow_private=True)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def trap_port() -> Iterator[tuple[int, list[socket.socket]]]:
    """Listening sockets on loopback addresses, all on one port, to catch any connection."""
    listeners: list[socket.socket] = []
    first = socket.socket()
    first.bind(("127.0.0.1", 0))
    port = int(first.getsockname()[1])
    listeners.append(first)
    extra = [(socket.AF_INET, "127.1.2.3")]
    if _has_ipv6_loopback():
        extra.append((socket.AF_INET6, "::1"))
    for family, host in extra:
        sock = socket.socket(family)
        sock.bind((host, port))
        listeners.append(sock)
    for sock in listeners:
        sock.listen(8)
        sock.setblocking(False)
    try:
        yield port, listeners
    finally:
        for sock in listeners:
            sock.close()


def _accepted_nothing(listeners: list[socket.socket]) -> bool:
    for sock in listeners:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            continue
        conn.close()
        return False
    return True


REFUSED_HOSTS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "0.0.0.0",
    "127.1.2.3",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::]",
]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
async def test_loopback_and_unspecified_hosts_are_refused_without_connecting(
    host: str, trap_port: tuple[int, list[socket.socket]]
) -> None:
    port, listeners = trap_port
    with pytest.raises(InvalidOption) as caught:
        await check_webhook_url(f"http://{host}:{port}/hook", PUBLIC_ONLY)
    assert caught.value.errors[0]["field"] == "webhook_url"
    assert "non-public address" in caught.value.errors[0]["message"]
    assert _accepted_nothing(listeners)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/file",
        "file:///etc/passwd",
        "gopher://localhost:70/",
        "javascript:alert(1)",
        "http:///no-host",
        "//127.0.0.1/no-scheme",
        "not a url",
    ],
)
async def test_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        await check_webhook_url(url, ANY_ADDRESS)
    assert caught.value.errors[0]["field"] == "webhook_url"


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "169.254.169.254",  # cloud metadata
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
        "127.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
        "2002:a00:1::",  # 6to4 wrapping 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/", "https://[fd00::1]/"]
)
async def test_private_literals_are_refused_even_with_a_port(url: str) -> None:
    # Literal addresses: no DNS, no packet; refused from the address alone.
    with pytest.raises(InvalidOption):
        await check_webhook_url(url, PUBLIC_ONLY)


async def test_private_targets_allowed_when_the_operator_says_so() -> None:
    url = "http://127.0.0.1:9/hook"
    assert await check_webhook_url(url, ANY_ADDRESS) == url
    target = await resolve_target("http://localhost:9/hook", ANY_ADDRESS)
    assert target.address in ("127.0.0.1", "::1")
    assert target.host_header == "localhost:9"
    assert target.pinned_url().host == target.address


async def test_target_pins_the_checked_address_and_keeps_the_name_for_tls() -> None:
    target = await resolve_target("https://user:pw@localhost:8443/a?b=1", ANY_ADDRESS)
    pinned = target.pinned_url()
    assert pinned.host == target.address and pinned.port == 8443
    assert pinned.path == "/a" and pinned.query == b"b=1"
    assert target.server_name == "localhost"
    assert target.host_header == "localhost:8443"


def test_submission_answers_422_for_a_loopback_webhook(live_server: LiveServer) -> None:
    # The API checks query options before reading the body: a refused URL costs no upload.
    with live_server.client() as client:
        for host in ("127.0.0.1", "localhost", "[::1]", "0.0.0.0", "[::ffff:127.0.0.1]"):
            answer = client.post(
                "/convert",
                params={"webhook_url": f"http://{host}:9/hook"},
                content=b"not a video",
                headers={"content-type": "video/mp4"},
            )
            assert answer.status_code == 422, answer.text
            problem = answer.json()
            assert problem["code"] == "invalid_option"
            assert problem["errors"][0]["field"] == "webhook_url"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_delivery_refuses_a_target_that_is_no_longer_public(db: Database) -> None:
    """A row whose URL now resolves to loopback fails at once, and nothing connects."""
    owner, _ = await create_owner(db, "alice")
    with WebhookReceiver() as receiver:
        job = await finished_job(db, owner.id, webhook_url=receiver.url)
        settings = Settings(
            database_url=db.url, webhook_allow_private=False, notify_retry_seconds="0,0.1,0.1"
        )
        notifier = Notifier(settings, db)
        try:
            assert await notifier.deliver_due() == 1
        finally:
            await notifier.stop()
        assert receiver.connections == 0
    async with db.read() as conn:
        table = Notification.__table__
        row = (await conn.execute(select(table).where(table.c.job_id == job.id))).mappings().one()
    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert "non-public address" in row["last_error"]


def test_pinned_url_brackets_ipv6() -> None:
    url = httpx.URL("http://example.test:8080/x").copy_with(host="::1")
    assert str(url) == "http://[::1]:8080/x"

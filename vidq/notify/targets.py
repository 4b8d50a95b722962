"""Where notifications may go: webhook URLs are checked before any request is made to them.

A webhook URL must be http or https, and every address its host resolves to must be a
public one (no loopback, private, link-local, multicast, reserved or unspecified
address, also not hidden in an IPv4-mapped, 6to4 or Teredo IPv6 address), unless the
operator allows private targets. The check returns the address it approved, and the
sender connects to exactly that address, so a DNS answer that changes between the check
and the connection (DNS rebinding) cannot redirect the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

from vidq.errors import InvalidOption, TargetRefused, TargetUnresolved

RESOLVE_TIMEOUT_SECONDS = 10.0
SCHEMES = ("http", "https")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# NAT64 (RFC 6052): a gateway turns these into the IPv4 address in their last 32 bits.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL with the address approved for it."""

    url: httpx.URL
    address: str  # the IP to connect to, and nothing else

    @property
    def host_header(self) -> str:
        """The Host header the URL implies (host and any non-default port, no userinfo)."""
        return self.url.netloc.decode("ascii")

    @property
    def server_name(self) -> str:
        """The name TLS must present a certificate for (sent as SNI)."""
        return self.url.raw_host.decode("ascii")

    def pinned_url(self) -> httpx.URL:
        """The URL with its host replaced by the approved address."""
        return self.url.copy_with(host=self.address)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address may lead to: mapped, 6to4, Teredo, NAT64."""
    embedded: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        embedded.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    if address in NAT64_PREFIX:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def is_public_address(address: IPAddress) -> bool:
    """Whether an address is globally reachable unicast, including what it embeds."""
    if (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    ):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return all(is_public_address(inner) for inner in _embedded_ipv4(address))
    return True


def parse_webhook_url(url: str) -> httpx.URL:
    """The URL parsed, if it is an absolute http(s) URL with a host; TargetRefused otherwise."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise TargetRefused("is not a valid URL") from exc
    if parsed.scheme not in SCHEMES:
        raise TargetRefused("must be an http or https URL")
    if not parsed.raw_host:
        raise TargetRefused("has no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise TargetRefused("has an invalid port")
    return parsed


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
    except (OSError, TimeoutError) as exc:
        raise TargetUnresolved(f"host {host} does not resolve") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TargetUnresolved(f"host {host} does not resolve")
    return addresses


async def resolve_webhook_target(url: str, *, allow_private: bool) -> WebhookTarget:
    """Parse and resolve a webhook URL; the target names the one address to connect to.

    Raises TargetRefused for a URL that may never be used, TargetUnresolved when its
    host does not resolve. A host with any non-public address is refused as a whole.
    """
    parsed = parse_webhook_url(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await _resolve(host, port)
    if not allow_private:
        for address in addresses:
            if not is_public_address(address):
                raise TargetRefused(f"resolves to a non-public address ({address})")
    return WebhookTarget(url=parsed, address=str(addresses[0]))


async def check_webhook_url(url: str, *, allow_private: bool) -> str:
    """The URL if it is an acceptable webhook target; InvalidOption otherwise."""
    try:
        await resolve_webhook_target(url, allow_private=allow_private)
    except (TargetRefused, TargetUnresolved) as exc:
        raise InvalidOption.field("webhook_url", str(exc)) from exc
    return url

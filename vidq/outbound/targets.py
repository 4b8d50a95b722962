"""Where outbound requests may go: every URL a client names is checked before any request.

A URL a client gives vidq (a webhook, a `source_url` to import, each redirect of an
import) must be http or https, and every address its host resolves to must be a public
one (no loopback, private, link-local, multicast, reserved or unspecified address, also
not hidden in an IPv4-mapped, 6to4, Teredo or NAT64 IPv6 address), unless the operator's
`AddressPolicy` lets it through: all private addresses (VIDQ_WEBHOOK_ALLOW_PRIVATE), or
the entries of VIDQ_URL_ALLOW (`host[:port]`, `[v6]:port` or CIDR). The check returns
the address it approved, and the request connects to exactly that address (the URL's
name still goes in `Host` and in TLS's SNI), so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot redirect the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

from vidq.errors import TargetRefused, TargetUnresolved

RESOLVE_TIMEOUT_SECONDS = 10.0
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# NAT64 (RFC 6052): a gateway turns these into the IPv4 address in their last 32 bits.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class AllowEntry:
    """One VIDQ_URL_ALLOW entry: a host name or a network, and perhaps one port."""

    host: str | None = None  # a lower-case host name, matched against the URL's own
    network: IPNetwork | None = None  # matched against each address the host resolves to
    port: int | None = None  # None: any port

    def admits(self, host: str, port: int, address: IPAddress) -> bool:
        """Whether a request to `host:port`, resolved to `address`, is let through."""
        if self.port is not None and port != self.port:
            return False
        if self.host is not None:
            return host.lower() == self.host
        return self.network is not None and address in self.network


def _port(text: str, entry: str) -> int:
    if not (text.isascii() and text.isdigit() and 0 < int(text) < 65536):
        raise ValueError(f"{entry!r} has an invalid port")
    return int(text)


def parse_allow_entry(entry: str) -> AllowEntry:
    """`host`, `host:port`, `address`, `address:port`, `[v6]:port` or `network/prefix`."""
    text = entry.strip()
    if "/" in text:
        try:
            return AllowEntry(network=ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not a network in CIDR notation") from exc
    port: int | None = None
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{entry!r} is not [address]:port")
            port = _port(rest[1:], entry)
        text = inner
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
        port = _port(port_text, entry)
    try:
        return AllowEntry(network=ipaddress.ip_network(text), port=port)
    except ValueError:
        pass
    if (
        not text
        or not all(part.isascii() and part for part in text.split("."))
        or any(ch in text for ch in " @/?#:[]")
    ):
        raise ValueError(f"{entry!r} is neither a host, an address nor a network")
    return AllowEntry(host=text.lower().rstrip("."), port=port)


def parse_allow_list(text: str) -> tuple[AllowEntry, ...]:
    """The entries of a comma-separated VIDQ_URL_ALLOW; ValueError names a bad one."""
    return tuple(parse_allow_entry(item) for item in text.split(",") if item.strip())


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses outbound requests may reach: public ones, and what the operator allows."""

    allow_private: bool = False
    allowed: tuple[AllowEntry, ...] = ()

    def admits(self, host: str, port: int, address: IPAddress) -> bool:
        """Whether a request to `host:port` may connect to `address`."""
        return (
            self.allow_private
            or is_public_address(address)
            or any(entry.admits(host, port, address) for entry in self.allowed)
        )


@dataclass(frozen=True)
class OutboundTarget:
    """A URL with the addresses approved for it (every one its host resolved to)."""

    url: httpx.URL
    address: str  # the IP to connect to, and nothing else
    # All approved addresses, `address` first: a client may try the next if one fails.
    addresses: tuple[str, ...] = ()

    @property
    def port(self) -> int:
        """The port to connect to (the scheme's default if the URL names none)."""
        return self.url.port or DEFAULT_PORTS[self.url.scheme]

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


def parse_target_url(url: str | httpx.URL) -> httpx.URL:
    """The URL parsed, if it is an absolute http(s) URL with a host; TargetRefused otherwise."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
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


async def resolve_target(url: str | httpx.URL, policy: AddressPolicy) -> OutboundTarget:
    """Parse and resolve a URL; the target names the one address to connect to.

    Raises TargetRefused for a URL that may never be used, TargetUnresolved when its
    host does not resolve. A host with any address the policy refuses is refused as a whole.
    """
    parsed = parse_target_url(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    addresses = await _resolve(host, port)
    for address in addresses:
        if not policy.admits(host, port, address):
            raise TargetRefused(f"resolves to a non-public address ({address})")
    approved = tuple(str(address) for address in addresses)
    return OutboundTarget(url=parsed, address=approved[0], addresses=approved)

"""The one gate for requests the server makes to URLs people give it (Prometheus sources,
outbound webhooks and the scaling webhooks among them).

A URL a user gives is a request the server makes for them, from inside the network: to a
loopback port, a cloud metadata service (169.254.169.254, fd00:ec2::254), a private
address. So every outbound request resolves its host, refuses any address that is not
globally routable (loopback, link-local, private, shared, multicast, unspecified,
reserved, in every IPv6 and IPv4-mapped form), and connects to the very address it
checked, so a DNS answer that changes between the check and the connection (rebinding)
cannot swap it. Redirects are never followed. A site administrator allows hosts or
networks in ``MECH_OUTBOUND_ALLOW`` (for a Prometheus on the same machine, say).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import httpx

from mechanisms.core.config import Settings, get_settings
from mechanisms.core.errors import InvalidInput

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RefusedDestination(httpx.TransportError):
    """The destination is one the server may not reach. An ``httpx.TransportError``, so
    callers that handle an unreachable server handle this too."""


@dataclass(frozen=True)
class Allowance:
    """What a site administrator lets the server reach although it is not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Allowance:
        hosts, networks = set(), []
        for entry in (e.strip() for e in text.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows(self, address: Address) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)


@lru_cache(maxsize=8)
def _parsed(text: str) -> Allowance:
    return Allowance.parse(text)


def allowance(settings: Settings | None = None) -> Allowance:
    """The site's allowance, from ``MECH_OUTBOUND_ALLOW`` (hosts and CIDRs, commas)."""
    return _parsed((settings or get_settings()).outbound_allow)


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _unwrapped(address: Address) -> Address:
    """The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), 6to4 or NAT64 IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        return address.ipv4_mapped or address.sixtofour or address
    return address


def is_public(address: Address) -> bool:
    inner = _unwrapped(address)
    return inner.is_global and not inner.is_multicast and address.is_global


def _addresses(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    # An IPv6 answer may carry a zone ("fe80::1%eth0"); the zone does not change the class.
    return list(dict.fromkeys(ipaddress.ip_address(f[4][0].split("%")[0]) for f in found))


def _refused(host: str, addresses: Iterable[Address], allow: Allowance) -> bool:
    if allow.allows_host(host):
        return False
    return any(not is_public(a) and not allow.allows(a) for a in addresses)


def check_url(url: str, field: str = "url", allow: Allowance | None = None) -> None:
    """Refuse, when it is given, a URL whose host is or resolves to an address the server
    may not reach. A name that does not resolve yet is taken; it is checked at every fetch."""
    allow = allow or allowance()
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise InvalidInput(f"{field}: not a URL", details={"field": field}) from None
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if _refused(host, _addresses(host, port), allow):
        raise InvalidInput(
            f"{field}: {host} is a loopback, private, link-local or otherwise internal "
            "address; the server does not send requests there unless a site administrator "
            "allows it (MECH_OUTBOUND_ALLOW)",
            code="destination_refused",
            details={"field": field},
        )


class GuardedTransport(httpx.BaseTransport):
    """Resolves each request's host once, refuses internal addresses, and connects to the
    address it checked: the URL carries the address, the Host header and TLS (SNI and
    certificate check) keep the name."""

    def __init__(self, allow: Allowance | None = None, **transport_options: object) -> None:
        self._allow = allow
        self._inner = httpx.HTTPTransport(**transport_options)  # type: ignore[arg-type]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        allow = self._allow or allowance()
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        addresses = _addresses(host, port)
        if not addresses:
            raise RefusedDestination(f"{host} does not resolve", request=request)
        if _refused(host, addresses, allow):
            raise RefusedDestination(f"{host} is an internal address", request=request)
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=str(addresses[0])),
            headers=request.headers,
            stream=request.stream,
            extensions={**request.extensions, "sni_hostname": host},
        )
        return self._inner.handle_request(pinned)

    def close(self) -> None:
        self._inner.close()


def client(timeout: float | httpx.Timeout, allow: Allowance | None = None) -> httpx.Client:
    """An HTTP client for user-given URLs: every request through the guard, no redirects."""
    return httpx.Client(transport=GuardedTransport(allow), timeout=timeout, follow_redirects=False)

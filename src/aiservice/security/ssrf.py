"""SSRF guard for URLs that come from requests (webhook ``callback_url`` and the like).

A URL is allowed only if every address its host resolves to is public: loopback, private,
link-local (``169.254.169.254`` included), unique-local, CGNAT, multicast, reserved and
cloud metadata addresses and host names are refused unless ``ssrf_allowlist`` names the
host or a CIDR holding the address.

Checking and connecting are one step: :class:`GuardedTransport` resolves and checks at
connect time and connects to the address it checked (the Host header and TLS SNI keep the
original name), so a DNS answer that changes between check and connect (rebinding) cannot
redirect the request. :meth:`SSRFGuard.check_url` runs the same check up front so a bad
URL is refused with a 400 before any work starts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from ..errors import InvalidRequestError

__all__ = ["GuardedTransport", "SSRFError", "SSRFGuard"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
    }
)
# Ranges the ipaddress flags miss or that deserve to be explicit.
_BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT, also Alibaba's metadata 100.100.100.200
        "169.254.0.0/16",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "fc00::/7",
        "fe80::/10",
        "fd00:ec2::254/128",
    )
)


class SSRFError(InvalidRequestError):
    """A request-supplied URL points somewhere the service must not call."""

    default_code = "url_not_allowed"


def _blocked(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _blocked(ip.ipv4_mapped)
    if any(ip in net for net in _BLOCKED_NETWORKS if net.version == ip.version):
        return True
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


class SSRFGuard:
    """Resolves a host and decides whether the service may connect to it."""

    def __init__(self, allowlist: Iterable[str] = ()) -> None:
        self._hosts: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allowlist:
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._hosts.add(entry.lower().rstrip("."))

    def _allowlisted(self, host: str, ip: IPAddress | None = None) -> bool:
        if host in self._hosts:
            return True
        return ip is not None and any(
            ip in net for net in self._networks if net.version == ip.version
        )

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to; raises :class:`SSRFError` if any is refused."""
        host = host.lower().rstrip(".").strip("[]")
        if host in METADATA_HOSTS and not self._allowlisted(host):
            raise SSRFError(f"host {host!r} is a cloud metadata service")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise SSRFError(f"host {host!r} does not resolve") from exc
            addresses = list(dict.fromkeys(ipaddress.ip_address(i[4][0]) for i in infos))
        if not addresses:
            raise SSRFError(f"host {host!r} does not resolve")
        for ip in addresses:
            # Every answer must pass: a name resolving to public and private addresses is
            # refused rather than trusted on whichever answer comes first.
            if _blocked(ip) and not self._allowlisted(host, ip):
                raise SSRFError(f"host {host!r} resolves to a non-public address ({ip})")
        return [str(ip) for ip in addresses]

    async def check_url(self, url: str) -> None:
        """Refuse non-HTTP schemes and hosts that resolve to non-public addresses."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise SSRFError(f"invalid URL: {exc}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise SSRFError("only absolute http(s) URLs are allowed")
        await self.resolve(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks at connect time, then connects to the checked address."""

    def __init__(self, guard: SSRFGuard) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.resolve(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed by the SSRF guard")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection goes through :class:`SSRFGuard`.

    Never follows proxies from the environment (a proxy would connect on our behalf to an
    unchecked address). TLS SNI and certificate checks use the URL's host name.
    """

    def __init__(self, guard: SSRFGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # httpx has no public hook for the network backend; rebuild its pool with ours,
        # keeping the SSL context and limits httpx derived from the arguments.
        pool = self._pool
        assert isinstance(pool, httpcore.AsyncConnectionPool)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=pool._ssl_context,
            max_connections=pool._max_connections,
            max_keepalive_connections=pool._max_keepalive_connections,
            keepalive_expiry=pool._keepalive_expiry,
            http1=pool._http1,
            http2=pool._http2,
            retries=pool._retries,
            network_backend=_GuardedBackend(guard),
        )

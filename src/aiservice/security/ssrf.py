"""SSRF guard for every URL the service did not take verbatim from its own configuration.

A connection is allowed only if every address its host resolves to is public: loopback,
private, link-local (``169.254.169.254`` included), unique-local, CGNAT, multicast,
reserved, unspecified and cloud metadata addresses and host names are refused unless an
allowlist rule (``orchestrator.ssrf_allowlist``: host, address or CIDR, optionally with a
port) names them. IPv6 addresses that embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are
judged by the IPv4 address they carry.

Host spellings are normalised here, not left to the OS resolver: ``inet_aton`` forms
(``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1``, ``127.1``) are read as the addresses they
spell, trailing dots are dropped, and percent signs (encoded names, IPv6 zone ids) refuse
the host outright.

These are the rules; they are enforced in the connector of the orchestrator's HTTP
sessions (:mod:`aiservice.transport.guard`), which calls :meth:`SSRFGuard.resolve` for every
new connection and connects only to the addresses it returned, so a DNS answer that changes
between a check and the connection (rebinding) cannot redirect the request.
:meth:`SSRFGuard.check_url` runs the same check up front so a bad URL is refused with a
clear error before any work starts. URLs are read with ``yarl``, as the connector reads
them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

from yarl import URL

from ..config.allowlist import AllowRule, IPAddress, parse_allow_entry, parse_ipv4_loose
from ..errors import InvalidRequestError

__all__ = ["SSRFError", "SSRFGuard", "default_port"]

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
# Ranges that ``is_global`` misses (Python < 3.12.4 calls NAT64 and IPv4-compatible
# addresses global) or that deserve to be explicit.
_BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT, also Alibaba's metadata 100.100.100.200
        "169.254.0.0/16",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "::/96",  # IPv4-compatible (deprecated), ::, ::1
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
        "fc00::/7",
        "fe80::/10",
        "fd00:ec2::254/128",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix


class SSRFError(InvalidRequestError):
    """A URL points somewhere the service must not call."""

    default_code = "url_not_allowed"


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a translation scheme routes ``ip`` to, if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _blocked(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return _blocked(embedded)
        if ip.scope_id:
            return True
    if any(ip in net for net in _BLOCKED_NETWORKS if net.version == ip.version):
        return True
    return (
        not ip.is_global
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _literal_address(host: str) -> IPAddress | None:
    """``host`` as an address if it is one in any spelling; ``None`` for a name."""
    if "%" in host:
        # Percent-encoded names and IPv6 zone ids: no legitimate upstream needs them, and
        # the resolver and the URL parser disagree on what they mean.
        raise SSRFError(f"host {host!r} is not allowed (percent-encoding or IPv6 zone id)")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return parse_ipv4_loose(host)
    except ValueError as exc:
        raise SSRFError(f"host {host!r} is not a valid address") from exc


class SSRFGuard:
    """Resolves a host and decides whether the service may connect to it.

    ``allowlist`` holds entries as written in ``orchestrator.ssrf_allowlist`` (strings) or
    parsed :class:`~aiservice.config.allowlist.AllowRule` objects.
    """

    def __init__(self, allowlist: Iterable[str | AllowRule] = ()) -> None:
        self.rules: tuple[AllowRule, ...] = tuple(
            rule if isinstance(rule, AllowRule) else parse_allow_entry(rule) for rule in allowlist
        )

    def extended(self, rules: Iterable[AllowRule]) -> SSRFGuard:
        """A guard allowing what this one does plus ``rules``."""
        return SSRFGuard((*self.rules, *rules))

    def _allowlisted(self, host: str, port: int, ip: IPAddress | None = None) -> bool:
        return any(rule.matches(host, ip, port) for rule in self.rules)

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to; raises :class:`SSRFError` if any is refused."""
        host = host.lower().strip("[]")
        host = host[:-1] if host.endswith(".") else host
        literal = _literal_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            if host in METADATA_HOSTS and not self._allowlisted(host, port):
                raise SSRFError(f"host {host!r} is a cloud metadata service")
            addresses = await self._lookup(host, port)
        for ip in addresses:
            # Every answer must pass: a name resolving to public and private addresses is
            # refused rather than trusted on whichever answer comes first.
            if _blocked(ip) and not self._allowlisted(host, port, ip):
                verb = "is" if literal is not None else "resolves to"
                where = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
                raise SSRFError(f"host {host!r} {verb} a non-public address ({where})")
        return [str(ip) for ip in addresses]

    async def _lookup(self, host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise SSRFError(f"host {host!r} does not resolve") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(i[4][0]) for i in infos))
        if not addresses:
            raise SSRFError(f"host {host!r} does not resolve")
        return addresses

    async def check_url(self, url: str) -> None:
        """Refuse non-HTTP schemes and hosts that resolve to non-public addresses."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError) as exc:
            raise SSRFError(f"invalid URL: {exc}") from exc
        host = parsed.raw_host
        if parsed.scheme not in ("http", "https") or not host:
            raise SSRFError("only absolute http(s) URLs are allowed")
        # raw_host (IDNA-encoded, no brackets) is what the connector resolves.
        await self.resolve(host, parsed.port or default_port(parsed.scheme))

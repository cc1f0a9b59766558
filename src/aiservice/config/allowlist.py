"""Host syntax shared by config validation and the SSRF guard (standard library only).

``orchestrator.ssrf_allowlist`` entries are validated here when the config loads, and the
guard matches connections against the same parsed :class:`AllowRule` objects. Entry forms:

* ``fn.internal`` / ``127.0.0.1`` / ``[::1]`` / ``10.0.0.0/8`` / ``fd00::/8``: that host or
  range, any port;
* ``fn.internal:8443`` / ``127.0.0.1:9001`` / ``[::1]:9001``: only that port.

:func:`parse_ipv4_loose` reads every spelling ``inet_aton`` (and so ``getaddrinfo``)
accepts: ``2130706433``, ``0x7f000001``, ``0x7f.0.0.1``, ``0177.0.0.1``, ``127.1``. The
guard normalises such hosts itself instead of leaving them to the OS resolver.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

__all__ = ["AllowRule", "IPAddress", "parse_allow_entry", "parse_ipv4_loose"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NUMBER = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_BRACKETED = re.compile(r"\[([^\]]+)\](?::([0-9]+))?")


def _number(text: str) -> int:
    if text[:2] in ("0x", "0X"):
        return int(text[2:] or "0", 16)
    if len(text) > 1 and text[0] == "0":
        return int(text, 8)  # raises ValueError on 8 and 9, as inet_aton refuses them
    return int(text)


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address an ``inet_aton``-style host spells, or ``None`` if it is a name.

    Raises ``ValueError`` for a host made only of numbers that is no valid address
    (``256.1.1.1``, ``0x1ffffffff``): it is neither a name nor an address.
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER.fullmatch(p) for p in parts):
        return None
    values = [_number(p) for p in parts]
    # The last part fills the remaining bytes: a (32 bits), a.b (8.24), a.b.c (8.8.16).
    last_bits = 8 * (5 - len(values))
    if any(v > 255 for v in values[:-1]) or values[-1] >= 1 << last_bits:
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    value = 0
    for v in values[:-1]:
        value = value << 8 | v
    return ipaddress.IPv4Address(value << last_bits | values[-1])


class AllowRule(NamedTuple):
    """One allowlist entry: a host name or an address range, optionally one port."""

    host: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def matches(self, host: str, ip: IPAddress | None, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.host is not None:
            return host == self.host
        return (
            ip is not None
            and self.network is not None
            and ip.version == self.network.version
            and ip in self.network
        )


def _port(text: str, entry: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{entry!r}: port must be 1..65535")
    return port


def _address_rule(address: str, port: int | None, entry: str) -> AllowRule:
    if "%" in address:
        raise ValueError(f"{entry!r}: IPv6 zone ids are not allowed")
    ip = ipaddress.ip_address(address)
    return AllowRule(network=ipaddress.ip_network(ip), port=port)


def parse_allow_entry(entry: str) -> AllowRule:
    """Parse one allowlist entry; ``ValueError`` says what is wrong with it."""
    text = entry.strip().lower()
    if not text:
        raise ValueError("an empty entry allows nothing")
    if "/" in text:
        try:
            return AllowRule(network=ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not a CIDR range (a range takes no port)") from exc
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        port = _port(bracketed.group(2), entry) if bracketed.group(2) else None
        try:
            return _address_rule(bracketed.group(1), port, entry)
        except ValueError as exc:
            raise ValueError(f"{entry!r}: [{bracketed.group(1)}] is not an IPv6 address") from exc
    if text.count(":") > 1:
        # "::1:9001" is a valid address *and* looks like "::1" port 9001: brackets decide.
        raise ValueError(f"{entry!r}: write IPv6 addresses in brackets, [::1] or [::1]:9001")
    host, _, port_text = text.partition(":")
    port = None
    if port_text:
        if not port_text.isdigit():
            raise ValueError(f"{entry!r}: the port must be a number")
        port = _port(port_text, entry)
    return _host_rule(host, port, entry)


def _host_rule(host: str, port: int | None, entry: str) -> AllowRule:
    host = host.rstrip(".")
    try:
        return AllowRule(network=ipaddress.ip_network(ipaddress.IPv4Address(host)), port=port)
    except ValueError:
        pass
    try:
        loose = parse_ipv4_loose(host)
    except ValueError:
        loose = None
    if loose is not None or all(_NUMBER.fullmatch(p) for p in host.split(".")):
        # The guard reads these as addresses; the allowlist must say which one plainly.
        raise ValueError(f"{entry!r}: write IPv4 addresses as four decimal numbers (a.b.c.d)")
    if not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{entry!r} is not a host name, address, [IPv6]:port or CIDR range")
    return AllowRule(host=host, port=port)

"""The SSRF check in the connector: every connection a guarded session opens goes to an
address :class:`~aiservice.security.ssrf.SSRFGuard` approved for that host and port.

Two steps, both inside aiohttp's connect path:

1. **Resolution.** :class:`GuardedConnector` replaces the connector's host resolution
   (``_resolve_host``, which aiohttp calls for every new connection, address literals
   included) with the guard's: it reads every spelling of the host, resolves names,
   refuses the host if any answer is not allowed, and hands aiohttp the checked
   addresses as numeric results. No DNS cache: every new connection resolves and checks
   again. The ``Host`` header and TLS SNI/certificate checks keep the URL's host name.
2. **The socket.** The connector's ``socket_factory`` runs for each address aiohappyeyeballs
   is about to connect to, and refuses any address that is not among those the guard
   approved for this connection (kept in a context variable set by step 1, so only the
   current request's approval counts). Whatever aiohttp does between the two steps, a
   socket only ever connects to a checked address: a DNS answer that changes between an
   early check and the connection (rebinding) cannot move it.

Nothing else connects: the sessions never use proxies and never follow redirects.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import ResolveResult

from ..security.ssrf import SSRFError, SSRFGuard
from .session import KEEPALIVE_SECONDS, MAX_CONNECTIONS, ssl_context

if TYPE_CHECKING:
    from aiohappyeyeballs import AddrInfoType

__all__ = ["GuardedConnector", "UncheckedAddressError", "refusal"]

_Approved = frozenset[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]
_APPROVED: ContextVar[_Approved | None] = ContextVar("aiservice_ssrf_approved", default=None)
_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class UncheckedAddressError(SSRFError, OSError):
    """The socket factory refused an address the guard did not approve. An ``OSError``
    too, so the connection racer records it like a refused connection (and tries the
    next address) instead of failing in an unexpected way; aiohttp then wraps it in
    ``ClientConnectorError``, and :func:`refusal` finds it again."""


def refusal(exc: BaseException) -> SSRFError | None:
    """The guard's refusal behind an aiohttp connection error, if that is what it was."""
    seen: BaseException | None = exc
    for _ in range(4):  # ClientConnectorError -> (os_error / __cause__) -> ours
        if seen is None:
            return None
        if isinstance(seen, SSRFError):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return None


class GuardedConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that connects only to addresses ``guard`` approved."""

    def __init__(self, guard: SSRFGuard) -> None:
        super().__init__(
            limit=MAX_CONNECTIONS,
            limit_per_host=0,
            keepalive_timeout=KEEPALIVE_SECONDS,
            use_dns_cache=False,
            ssl=ssl_context(),
            socket_factory=_checked_socket,
        )
        self.guard = guard

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Any] | None = None
    ) -> list[ResolveResult]:
        _APPROVED.set(None)  # nothing is approved until the guard has answered
        addresses = await self.guard.resolve(host, port)
        _APPROVED.set(frozenset((ipaddress.ip_address(a), port) for a in addresses))
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": _NUMERIC,
            }
            for address in addresses
        ]


def _checked_socket(addr_info: AddrInfoType) -> socket.socket:
    family, type_, proto, _, sockaddr = addr_info
    host, port = str(sockaddr[0]), int(sockaddr[1])
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    approved = _APPROVED.get()
    if ip is None or approved is None or (ip, port) not in approved:
        message = f"refusing to connect to {host}:{port}: not checked by the SSRF guard"
        raise UncheckedAddressError(message)
    return socket.socket(family, type_, proto)

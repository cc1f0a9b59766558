"""aiohttp sessions: one per pool and event loop, tuned once, closed with the last user.

A pool (:class:`SessionPool`) owns one ``aiohttp.ClientSession`` per event loop that uses
it (in practice one), created lazily on that loop, because the platforms run the app on
different loops (uvicorn's, the Lambda bridge's kept loop, a test's). Another loop (a
later ``asyncio.run``, another thread) gets its own session; a dead loop's session is
dropped with its sockets closed. The providers share :data:`POOL`; the orchestrator has a
pool per SSRF tier whose connector checks every address (:mod:`.guard`).

Every session: no cookies (one tenant's cookie must never ride along on the next call),
no proxies or ``.netrc`` from the environment (``trust_env=False``; a proxy would also
connect on our behalf to an address no guard saw), no overall timeout (each request
brings its own), and the process's one SSL context.

Why aiohttp and not httpx: at a few dozen concurrent upstream calls httpx's pool
bookkeeping and per-request object graph were the largest cost of a gateway request, and
its pool scan is O(connections) per request event (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp

__all__ = [
    "DNS_CACHE_SECONDS",
    "KEEPALIVE_SECONDS",
    "MAX_CONNECTIONS",
    "POOL",
    "ConnectorFactory",
    "SessionPool",
    "client_timeout",
    "ssl_context",
    "tcp_connector",
]

MAX_CONNECTIONS = 200
"""Per pool and loop; no per-host limit (a wide fan-out to one function is the norm)."""
KEEPALIVE_SECONDS = 30.0
"""Idle connections live this long: longer than the gap between a flow's steps or a
client's requests, shorter than common load balancer idle timeouts (60 s and up), so we
close first and never write into a connection the other side already dropped."""
DNS_CACHE_SECONDS = 300

ConnectorFactory = Callable[[], aiohttp.BaseConnector]
"""Builds a pool's connector, on the loop the session will live on."""


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One context for the process: loading the CA bundle costs tens of ms each time."""
    try:
        import certifi  # the bundle httpx used: the same trust as before the switch

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with the dependencies
        return ssl.create_default_context()


def tcp_connector() -> aiohttp.TCPConnector:
    """The providers' connector: pooled keep-alive connections, cached DNS."""
    return aiohttp.TCPConnector(
        limit=MAX_CONNECTIONS,
        limit_per_host=0,
        keepalive_timeout=KEEPALIVE_SECONDS,
        use_dns_cache=True,
        ttl_dns_cache=DNS_CACHE_SECONDS,
        ssl=ssl_context(),
    )


def client_timeout(seconds: float | None, *, read: bool = True) -> aiohttp.ClientTimeout:
    """httpx semantics: ``seconds`` per phase (pool wait, each read), connect capped at
    10 s; ``read=False``: no limit between chunks (downloads); ``None``: only the 10 s
    connect bound (the caller enforces its own deadline around the request)."""
    return aiohttp.ClientTimeout(
        total=None,
        connect=seconds,
        sock_connect=10.0 if seconds is None else min(seconds, 10.0),
        sock_read=seconds if read else None,
    )


class SessionPool:
    """A session for each event loop that uses it, all closed with the last user. A
    session lives on one loop: two loops in two threads each get their own rather than
    taking turns closing each other's."""

    def __init__(self, connector: ConnectorFactory = tcp_connector) -> None:
        self._connector = connector
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self.users = 0
        self.created = 0

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is not None and not session.closed:
            return session
        for old, stale in list(self._sessions.items()):  # finished asyncio.run loops
            if old.is_closed() or stale.closed:
                del self._sessions[old]
                _abandon(stale)
        session = self._sessions[loop] = _new_session(self._connector())
        self.created += 1
        return session

    def sessions(self) -> list[aiohttp.ClientSession]:
        return list(self._sessions.values())

    def acquire(self) -> None:
        self.users += 1

    async def release(self) -> None:
        self.users -= 1
        if self.users > 0:
            return
        await self.close()

    async def close(self) -> None:
        """Close every session now (the running loop's is awaited, others let go)."""
        sessions, self._sessions = self._sessions, {}
        running = asyncio.get_running_loop()
        for loop, session in sessions.items():
            if loop is running:
                await session.close()
            else:
                _abandon(session)


def _new_session(connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        trust_env=False,
        raise_for_status=False,
    )


def _abandon(session: aiohttp.ClientSession) -> None:
    """Let go of a session whose loop is no longer the running one.

    A loop still running (another thread's) closes it itself. A stopped or closed loop
    cannot run the close any more, so the pooled sockets are closed here: otherwise every
    one of them leaks a file descriptor until garbage collection."""
    connector = session.connector
    loop = getattr(connector, "_loop", None)
    if loop is not None and loop.is_running() and not loop.is_closed():
        asyncio.run_coroutine_threadsafe(session.close(), loop)
        return
    session.detach()
    if connector is not None:
        _close_sockets(connector)


def _close_sockets(connector: aiohttp.BaseConnector) -> None:
    # aiohttp keeps idle connections in ``_conns`` and busy ones in ``_acquired``; on a
    # dead loop its own close() returns early and leaves both open.
    conns: Any = getattr(connector, "_conns", {})
    acquired: Any = getattr(connector, "_acquired", set())
    protocols = [proto for queue in conns.values() for proto, _ in queue] + list(acquired)
    for proto in protocols:
        transport = proto.transport
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            sock.close()
            transport._sock = None  # its __del__ would warn about a socket we closed
    conns.clear()  # an empty connector is dropped without a warning
    acquired.clear()


POOL = SessionPool()
"""The providers' pool: one session (one connection pool, one DNS cache) per process."""

"""HTTP clients for steps: a few small connection pools instead of one big one.

httpcore's pool scans every connection on each request event, which costs O(connections x
requests) CPU with wide fan-outs (50 parallel steps spent most of their time there).
Sharding by step keeps each pool small while a step still reuses its keep-alive
connections across executions.

Clients are built on first use and share one SSL context: loading the CA bundle takes tens
of milliseconds, which app startup (cold start) should not pay per client, or at all when
no flow runs.
"""

from __future__ import annotations

import ssl
import zlib

import httpx

from ..security.ssrf import GuardedTransport, SSRFGuard

__all__ = ["ClientPool"]

SHARDS = 16
GUARDED_SHARDS = 4
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
# Deadlines are enforced per attempt with asyncio; httpx only bounds connecting.
_TIMEOUT = httpx.Timeout(None, connect=10.0)


class ClientPool:
    def __init__(self, guard: SSRFGuard) -> None:
        self._guard = guard
        self._ssl: ssl.SSLContext | None = None
        self._clients: dict[tuple[bool, int], httpx.AsyncClient] = {}

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    def _build(self, guarded: bool) -> httpx.AsyncClient:
        if not guarded:
            return httpx.AsyncClient(
                verify=self._ssl_context(),
                follow_redirects=False,
                limits=_LIMITS,
                timeout=_TIMEOUT,
            )
        # Request-derived URLs: every connection is checked and pinned; no env proxies.
        transport = GuardedTransport(self._guard, verify=self._ssl_context(), limits=_LIMITS)
        return httpx.AsyncClient(
            transport=transport, follow_redirects=False, trust_env=False, timeout=_TIMEOUT
        )

    def get(self, key: str, *, guarded: bool = False) -> httpx.AsyncClient:
        shard = zlib.crc32(key.encode()) % (GUARDED_SHARDS if guarded else SHARDS)
        client = self._clients.get((guarded, shard))
        if client is None:
            client = self._clients[(guarded, shard)] = self._build(guarded)
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

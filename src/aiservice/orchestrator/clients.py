"""HTTP clients for steps and webhooks: every one of them goes through the SSRF guard.

Two tiers, both :class:`~aiservice.security.ssrf.GuardedTransport`:

* ``built``: URLs built from request input, step outputs, upstream responses or secrets;
  only public addresses and ``orchestrator.ssrf_allowlist`` are reachable.
* ``literal``: URLs whose origin the configuration fixes (see :mod:`.origin`); the guard
  additionally allows exactly those configured ``host:port`` origins, so even a literal
  step cannot be bounced to another internal address.

There is no unguarded client, so no code path can hand a built URL to one. Clients never
follow redirects and never use proxies from the environment (a proxy would connect on our
behalf to an address the guard never saw).

httpcore's pool scans every connection on each request event, which costs O(connections x
requests) CPU with wide fan-outs (50 parallel steps spent most of their time there).
Sharding by step keeps each pool small while a step still reuses its keep-alive
connections across executions. Clients are built on first use and share one SSL context:
loading the CA bundle takes tens of milliseconds, which app startup (cold start) should not
pay per client, or at all when no flow runs.
"""

from __future__ import annotations

import ssl
import zlib

import httpx

from ..security.ssrf import GuardedTransport, SSRFGuard

__all__ = ["ClientPool"]

SHARDS = 16
BUILT_SHARDS = 4
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
# Deadlines are enforced per attempt with asyncio; httpx only bounds connecting.
_TIMEOUT = httpx.Timeout(None, connect=10.0)


class ClientPool:
    def __init__(self, built: SSRFGuard, literal: SSRFGuard) -> None:
        self._guards = {False: built, True: literal}
        self._ssl: ssl.SSLContext | None = None
        self._clients: dict[tuple[bool, int], httpx.AsyncClient] = {}

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    def _build(self, literal: bool) -> httpx.AsyncClient:
        transport = GuardedTransport(
            self._guards[literal], verify=self._ssl_context(), limits=_LIMITS
        )
        return httpx.AsyncClient(
            transport=transport, follow_redirects=False, trust_env=False, timeout=_TIMEOUT
        )

    def get(self, key: str, *, literal: bool) -> httpx.AsyncClient:
        """The client for ``key`` (a step or webhook); ``literal``: its origin is configured."""
        shard = zlib.crc32(key.encode()) % (SHARDS if literal else BUILT_SHARDS)
        client = self._clients.get((literal, shard))
        if client is None:
            client = self._clients[(literal, shard)] = self._build(literal)
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

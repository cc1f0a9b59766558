"""HTTP clients for steps and webhooks: every one of them goes through the SSRF guard.

Two tiers, each a :class:`~aiservice.transport.client.GuardedClient` (an aiohttp session
whose connector checks every address it connects to, see :mod:`aiservice.transport.guard`):

* ``built``: URLs built from request input, step outputs, upstream responses or secrets;
  only public addresses and ``orchestrator.ssrf_allowlist`` are reachable.
* ``literal``: URLs whose origin the configuration fixes (see :mod:`.origin`); the guard
  additionally allows exactly those configured ``host:port`` origins, so even a literal
  step cannot be bounced to another internal address.

There is no unguarded client, so no code path can hand a built URL to one. Clients never
follow redirects and never use proxies from the environment (a proxy would connect on our
behalf to an address the guard never saw).

One session per tier (and event loop): aiohttp's pool hands out a keep-alive connection
in constant time, so a wide fan-out needs no sharding. Sessions are built on first use
(the SSL context is the process's one), so app startup pays nothing when no flow runs.
"""

from __future__ import annotations

from ..security.ssrf import SSRFGuard
from ..transport.client import GuardedClient

__all__ = ["ClientPool"]


class ClientPool:
    def __init__(self, built: SSRFGuard, literal: SSRFGuard) -> None:
        self._tiers = {False: GuardedClient(built), True: GuardedClient(literal)}

    def get(self, *, literal: bool) -> GuardedClient:
        """The client for a step or webhook; ``literal``: its origin is configured."""
        return self._tiers[literal]

    async def aclose(self) -> None:
        for client in self._tiers.values():
            await client.aclose()

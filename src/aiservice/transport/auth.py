"""The one way credentials reach an upstream request: a :class:`HeaderAuth` returns the
headers to add to one exact request.

Provider API keys (``providers.http.KeyHeaders``), step auth schemes (bearer, Google ID
tokens, AWS SigV4: ``orchestrator.auth``) and webhook signatures (``webhook-signature``)
all implement it. It is asked once per attempt with the final request, so a signature
covers the exact method, URL and body bytes sent, a retry is signed again, and a rotated
secret is picked up without a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from yarl import URL

__all__ = ["NO_AUTH", "HeaderAuth", "NoAuth", "Outgoing", "with_auth"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One request as it will be sent: the URL with its query, the headers so far, the
    body bytes."""

    method: str
    url: URL
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def header(self, name: str) -> str | None:
        """A header by name, case-insensitively."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


class HeaderAuth(Protocol):
    async def headers(self, request: Outgoing) -> Mapping[str, str]:
        """The headers to add to ``request`` (an empty mapping: none). Raises when the
        credentials cannot be obtained; the caller reports that as an auth failure."""
        ...


class NoAuth:
    async def headers(self, request: Outgoing) -> Mapping[str, str]:
        return {}


NO_AUTH = NoAuth()


async def with_auth(request: Outgoing, auth: HeaderAuth) -> Outgoing:
    """``request`` with ``auth``'s headers added (replacing any of the same name)."""
    added = await auth.headers(request)
    if not added:
        return request
    lowered = {name.lower() for name in added}
    headers = {k: v for k, v in request.headers.items() if k.lower() not in lowered}
    headers.update(added)
    return Outgoing(request.method, request.url, headers, request.body)

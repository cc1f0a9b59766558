"""The orchestrator's HTTP client: one request in, one answer read in full out (up to the
body bound of :mod:`.limits`), through a session whose connector runs the SSRF check
(:mod:`.guard`).

Redirects are never followed (a ``3xx`` comes back as the answer: following would resend
the body and credentials to another origin), proxies never used, cookies never kept.
Failures leave as :class:`TransportError` (with the three-word :data:`~.errors.Failure`)
or, when the guard refused the address, as :class:`~aiservice.security.ssrf.SSRFError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDictProxy
from yarl import URL

from ..security.ssrf import SSRFError, SSRFGuard
from . import limits
from .auth import NO_AUTH, HeaderAuth, Outgoing, with_auth
from .errors import TRANSPORT_ERRORS, Failure, classify, read_body
from .guard import GuardedConnector, refusal
from .session import SessionPool, client_timeout

__all__ = ["Answer", "GuardedClient", "InvalidURLError", "TransportError", "build_request"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TIMEOUT = client_timeout(None)  # callers bound each attempt; aiohttp only bounds connecting


class TransportError(Exception):
    """The exchange failed below HTTP: no answer, or not a usable one."""

    def __init__(self, message: str, failure: Failure) -> None:
        super().__init__(message)
        self.message = message
        self.failure = failure


class InvalidURLError(ValueError):
    """A URL (with its query) that no request can carry."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    reason: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status < 400 and "location" in self.headers

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def _query_value(value: Any) -> str:
    # httpx's spelling, which flows were written against: true/false, None as empty.
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def _query_pairs(query: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    for key, value in query.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            yield str(key), _query_value(item)


def build_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, Any] | None = None,
    body: bytes | None = None,
) -> Outgoing:
    """The request to send; ``query`` is appended to the URL's own query string.

    A URL holding a control character is refused rather than percent-encoded: a rendered
    URL with a NUL or CR/LF in it is a template fed hostile input, not an address."""
    if _CONTROL.search(url):
        raise InvalidURLError(f"control character in URL {url[:100]!r}")
    try:
        parsed = URL(url)
        if query:
            parsed = parsed.extend_query(list(_query_pairs(query)))
    except (ValueError, TypeError) as exc:
        raise InvalidURLError(f"{exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise InvalidURLError(f"{url!r} is not an absolute http(s) URL")
    return Outgoing(method.upper(), parsed, dict(headers or {}), body)


class GuardedClient:
    """One SSRF tier: a session pool (one session per event loop) whose connector lets
    through only what ``guard`` allows."""

    def __init__(
        self, guard: SSRFGuard, connector: type[GuardedConnector] = GuardedConnector
    ) -> None:
        self.guard = guard
        self._pool = SessionPool(lambda: connector(guard))

    @property
    def pool(self) -> SessionPool:
        return self._pool

    async def send(self, request: Outgoing, auth: HeaderAuth = NO_AUTH) -> Answer:
        """Send ``request`` (with ``auth``'s headers); any status comes back as an
        :class:`Answer`. The caller bounds the time (``asyncio.timeout``)."""
        request = await with_auth(request, auth)
        session = self._pool.session()
        try:
            async with session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=_TIMEOUT,
                allow_redirects=False,
            ) as response:
                body = await read_body(response, limits.current().max_body_bytes)
                return Answer(response.status, response.headers, body, response.reason or "")
        except SSRFError:
            raise
        except TRANSPORT_ERRORS as exc:
            refused = refusal(exc)
            if refused is not None:
                raise refused from exc
            text = str(exc)
            message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            raise TransportError(message, classify(exc)) from exc

    async def aclose(self) -> None:
        await self._pool.close()

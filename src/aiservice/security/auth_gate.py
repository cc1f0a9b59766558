"""Authentication before the body: an unauthenticated request never gets its body read.

FastAPI resolves dependencies (the API key among them) only after it has read and
validated the body, so a caller without a key could still make the service buffer,
parse and validate a megabyte of JSON, and learn from a 422 what the API expects. This
pure-ASGI gate runs first: it finds the route the request will reach, asks ``classify``
how that route is protected, checks the key (constant-time, :class:`KeyStore`) and either
answers 401/403 at once or passes the request on with the :class:`Principal` stored in
the scope, where the route's own dependency picks it up instead of checking again.

The protection is derived from the route itself (its dependencies), so a new protected
route is gated without being listed anywhere.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Protocol

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from ..error_shapes import error_body_for
from ..errors import AIServiceError, send_error
from .apikeys import KeyStore, Principal, extract_key

__all__ = ["PRINCIPAL_SCOPE_KEY", "AuthGateMiddleware", "Protection"]

PRINCIPAL_SCOPE_KEY = "aiservice.principal"
"""Where the gate leaves the authenticated :class:`Principal` in the ASGI scope."""


class Protection(enum.Enum):
    PUBLIC = "public"
    CALLER = "caller"
    ADMIN = "admin"


class Matcher(Protocol):
    def matches(self, scope: Scope) -> tuple[Match, Scope]: ...


RouteTable = Sequence[tuple[Matcher, Protection]]


def _headers(scope: Scope) -> tuple[str | None, str | None, bool]:
    """``Authorization``, ``X-API-Key`` and whether the request declares a body."""
    authorization = api_key = None
    has_body = False
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            api_key = value.decode("latin-1")
        elif name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            has_body = True
    return authorization, api_key, has_body


class AuthGateMiddleware:
    """``table`` lists each route (anything with Starlette's ``matches``) and its protection.

    It is built on the first request, when every router has been included; a route added
    to the app after that is not gated, and its dependency authenticates it as before.
    """

    def __init__(self, app: ASGIApp, *, table: Callable[[], RouteTable], keys: KeyStore) -> None:
        self.app = app
        self.keys = keys
        self._build = table
        self._table: list[tuple[Callable[[Scope], tuple[Match, Scope]], Protection]] | None = None

    def protection(self, scope: Scope) -> Protection:
        """How the route that ``scope`` reaches is protected (a wrong method counts)."""
        if self._table is None:
            # Bound once: the per-request loop is one regex match per route, nothing more.
            self._table = [(route.matches, level) for route, level in self._build()]
        partial: Protection | None = None
        for matches, level in self._table:
            match, _ = matches(scope)
            if match is Match.FULL:
                return level
            if match is Match.PARTIAL and partial is None:
                partial = level
        return partial if partial is not None else Protection.PUBLIC

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        level = self.protection(scope)
        if level is Protection.PUBLIC:
            await self.app(scope, receive, send)
            return
        authorization, api_key, has_body = _headers(scope)
        presented = extract_key(authorization, api_key)
        try:
            principal: Principal = await (
                self.keys.authenticate_admin
                if level is Protection.ADMIN
                else self.keys.authenticate
            )(presented)
        except AIServiceError as exc:
            if has_body:  # the body stays unread: the connection cannot carry another request
                exc.headers.setdefault("connection", "close")
            await send_error(send, exc, error_body_for(exc, scope))
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self.app(scope, receive, send)

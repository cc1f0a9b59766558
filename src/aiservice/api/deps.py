"""FastAPI dependencies shared by routers: the runtime, the caller's principal.

Every dependency is ``async`` (FastAPI runs sync ones in a worker thread, one hop per
request) and reads what it needs from the ``Request`` itself: each declared ``Header``
parameter is one more field FastAPI resolves and validates per request, on the hot path
of every API call.

The key is normally checked before the body is read, by
:class:`~aiservice.security.auth_gate.AuthGateMiddleware`, which finds the protection of
a route with :func:`route_protection` (the dependencies below mark it) and leaves the
principal in the scope. The dependencies then only pick it up; they still authenticate
themselves when the gate did not run (a router mounted into another app).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from ..config import Settings
from ..runtime import Runtime
from ..security.apikeys import ANONYMOUS, Principal, extract_key
from ..security.auth_gate import PRINCIPAL_SCOPE_KEY, Protection
from .routing import route_path

__all__ = [
    "AdminPrincipal",
    "CallerPrincipal",
    "ExactRoutes",
    "MetricsPrincipal",
    "RuntimeDep",
    "api_routes",
    "dependency_calls",
    "get_runtime",
    "protection_table",
    "route_protection",
]


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.aiservice
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _presented_key(request: Request) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer`` (see ``extract_key``)."""
    headers = request.headers
    return extract_key(headers.get("authorization"), headers.get("x-api-key"))


async def require_api_key(request: Request) -> Principal:
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal):
        runtime: Runtime = request.app.state.aiservice
        principal = await runtime.keys.authenticate(_presented_key(request))
    request.state.principal = principal
    return principal


async def require_admin(request: Request) -> Principal:
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal) or not principal.admin:
        runtime: Runtime = request.app.state.aiservice
        principal = await runtime.keys.authenticate_admin(_presented_key(request))
    request.state.principal = principal
    return principal


async def require_metrics_key(request: Request) -> Principal:
    """A key only with ``metrics.require_auth`` (scrapers often cannot send one)."""
    runtime: Runtime = request.app.state.aiservice
    if not runtime.settings.metrics.require_auth:
        return ANONYMOUS
    return await require_api_key(request)


CallerPrincipal = Annotated[Principal, Depends(require_api_key)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
MetricsPrincipal = Annotated[Principal, Depends(require_metrics_key)]


def dependency_calls(route: BaseRoute) -> list[Callable[..., Any]]:
    """Every dependency callable of ``route``, nested ones included (iteratively)."""
    if not isinstance(route, APIRoute):
        return []
    calls: list[Callable[..., Any]] = []
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if dependant.call is not None:
            calls.append(dependant.call)
        pending.extend(dependant.dependencies)
    return calls


def route_protection(route: BaseRoute, settings: Settings) -> Protection:
    """How ``route`` is protected, read from the principal dependency it declares."""
    calls = dependency_calls(route)
    if require_admin in calls:
        return Protection.ADMIN
    if require_api_key in calls:
        return Protection.CALLER
    if require_metrics_key in calls and settings.metrics.require_auth:
        return Protection.CALLER
    return Protection.PUBLIC


def api_routes(routes: Sequence[BaseRoute]) -> list[tuple[RouteContext, APIRoute]]:
    """Every API route of an app as served (included routers flattened), with its
    declaration (dependencies, the route class)."""
    return [
        (context, context.original_route)
        for context in iter_route_contexts(routes)
        if isinstance(context.original_route, APIRoute)
    ]


class ExactRoutes:
    """A matcher for the gate's table: ``(method, path)`` of routes without path parameters
    in one dict lookup, :data:`Match.FULL` or :data:`Match.NONE`.

    Put first in the table, it answers the common request without the gate trying every
    route's regex in turn; anything it does not know falls through to the full table.
    """

    def __init__(self, levels: dict[tuple[str, str], Protection]) -> None:
        self.levels = levels

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (scope.get("method"), route_path(scope)) in self.levels:
            return Match.FULL, {}
        return Match.NONE, {}


def _exact(table: list[tuple[RouteContext, Protection]]) -> dict[tuple[str, str], Protection]:
    """Static ``(method, path)`` pairs whose first FULL match in ``table`` is their own route
    (a route declared earlier with parameters may shadow a static one: left to the table)."""
    levels: dict[tuple[str, str], Protection] = {}
    for index, (context, level) in enumerate(table):
        path = context.path
        if not path or "{" in path:
            continue
        for method in context.methods or ():
            scope = {"type": "http", "method": method, "path": path, "root_path": ""}
            first = next(i for i, (c, _) in enumerate(table) if c.matches(scope)[0] is Match.FULL)
            if first == index:
                levels.setdefault((method, path), level)
    return levels


def protection_table(
    routes: Sequence[BaseRoute], settings: Settings
) -> list[tuple[Any, Protection]]:
    """What :class:`~aiservice.security.auth_gate.AuthGateMiddleware` matches requests on:
    one :class:`ExactRoutes` lookup per static route first, then every route in order."""
    table = [(context, route_protection(route, settings)) for context, route in api_routes(routes)]
    exact = ExactRoutes(_exact(table))
    return [*_by_level(exact), *table]


def _by_level(exact: ExactRoutes) -> list[tuple[Any, Protection]]:
    # The gate takes the level of the first FULL match: one matcher per level.
    out: list[tuple[Any, Protection]] = []
    for level in Protection:
        levels = {key: lv for key, lv in exact.levels.items() if lv is level}
        if levels:
            out.append((ExactRoutes(levels), level))
    return out

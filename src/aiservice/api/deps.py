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
from starlette.routing import BaseRoute

from ..config import Settings
from ..runtime import Runtime
from ..security.apikeys import ANONYMOUS, Principal, extract_key
from ..security.auth_gate import PRINCIPAL_SCOPE_KEY, Protection

__all__ = [
    "AdminPrincipal",
    "CallerPrincipal",
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


def protection_table(
    routes: Sequence[BaseRoute], settings: Settings
) -> list[tuple[RouteContext, Protection]]:
    """What :class:`~aiservice.security.auth_gate.AuthGateMiddleware` matches requests on."""
    return [(context, route_protection(route, settings)) for context, route in api_routes(routes)]

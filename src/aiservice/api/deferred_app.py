"""The app class: its API routers included when first needed, one API at a time.

Starlette includes nothing lazily by itself: the first request builds the auth gate's and
the direct routes' tables from every route, and FastAPI builds each route's dependency tree
then (:class:`~aiservice.api.deferred_route.DeferredRoute`): ~30 routes' worth of pydantic
work that a cold start answering ``/health/live`` does not need. :class:`DeferredApp`
includes the routers given as eager at once, and each other router on the first request
under one of the path prefixes it was given (``/v1/messages`` imports and builds the
Messages API only); a request for a path no prefix claims (a 404, ``/docs``), or reading
``routes`` (OpenAPI, tests, a mounting app), includes all that remain. Each router's routes
take the place they would have had if all were included at once, so the app serves and
lists the same routes in the same order whatever came first. A deferred entry may also be
a module name: a capability without a start hook is then imported only there.

Prefixes must be disjoint (no path is claimed by two routers, or by a router and an eager
path): then including one router first cannot change which route a path matches
(``tests/api/test_deferred_routes.py`` checks the shipped prefixes against the routes).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import APIRouter
from starlette.routing import BaseRoute
from starlette.types import Scope

from .routing import ServiceApp, route_path

__all__ = ["DeferredApp", "Deferred", "claims"]

Deferred = tuple[int, APIRouter | str, tuple[str, ...]]
"""A router not included yet: its place in route order, the router (or its module's name)
and the path prefixes it serves."""


def claims(prefixes: Sequence[str], path: str) -> bool:
    """Whether ``path`` is one of ``prefixes`` or below one (``/v1/messages`` claims
    ``/v1/messages/count_tokens``, not ``/v1/messagesX``)."""
    return any(path == p or path.startswith(p + "/") for p in prefixes)


class DeferredApp(ServiceApp):
    """A :class:`~aiservice.api.routing.ServiceApp` whose deferred routers are included on
    first need (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        self._deferred: list[Deferred] = []
        self._eager_paths: frozenset[str] = frozenset()
        self._anchor = 0  # where the first deferred router's routes go
        self._blocks: dict[int, int] = {}  # place -> number of routes, once included
        self._served: list[str] = []  # the prefixes of the routers included so far
        super().__init__(**kwargs)

    def add_routers(self, routers: Iterable[tuple[APIRouter | str, bool, tuple[str, ...]]]) -> None:
        """``(router or module name, eager, path prefixes)`` in route order. An eager
        router after a deferred one waits with it: the order of the routes is kept."""
        paths = set(self._eager_paths)
        for place, (router, eager, prefixes) in enumerate(routers):
            if eager and not self._deferred and isinstance(router, APIRouter):
                self.include_router(router)
                paths.update(getattr(route, "path", "") for route in router.routes)
            else:
                self._deferred.append((place, router, prefixes))
        self._eager_paths = frozenset(paths)
        self._anchor = len(self.router.routes)

    @property
    def routes(self) -> list[BaseRoute]:
        self.include_deferred()
        return self.router.routes

    def include_deferred(self, path: str | None = None) -> None:
        """Include the routers that claim ``path``, or, when none does or ``path`` is
        ``None``, every router not included yet (later calls for them do nothing)."""
        wanted = [d for d in self._deferred if path is not None and claims(d[2], path)]
        pending = wanted or list(self._deferred)
        for entry in pending:
            self._include(entry)
        if pending:
            # The middleware built its tables from the routes it saw: rebuilt on next call.
            self.middleware_stack = None

    def _include(self, entry: Deferred) -> None:
        place, target, prefixes = entry
        self._deferred.remove(entry)
        self._served.extend(prefixes)
        router: APIRouter = (
            importlib.import_module(target).router if isinstance(target, str) else target
        )
        end = len(self.router.routes)
        self.include_router(router)
        block = self.router.routes[end:]
        del self.router.routes[end:]
        at = self._anchor + sum(n for p, n in self._blocks.items() if p < place)
        self.router.routes[at:at] = block
        self._blocks[place] = len(block)

    def _before(self, scope: Scope) -> None:
        # A hook of ServiceApp.__call__ rather than an override of it: one coroutine frame
        # less on every request's stack.
        if self._deferred and scope["type"] != "lifespan":
            path = route_path(scope)
            if path not in self._eager_paths and not claims(self._served, path):
                self.include_deferred(path)

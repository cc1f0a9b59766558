"""The app class: its API routers included when first needed.

Starlette includes nothing lazily by itself: the first request builds the auth gate's and
the direct routes' tables from every route, and FastAPI builds each route's dependency tree
then (:class:`~aiservice.api.deferred_route.DeferredRoute`): ~30 routes' worth of pydantic
work that a cold start answering ``/health/live`` does not need. :class:`DeferredApp`
includes the routers given as eager at once and the others on the first request for any
other path, or when ``routes`` is read (OpenAPI, tests, a mounting app): it serves and
lists the same routes, in the same order, as if all were included at once. A deferred
entry may also be a module name: a capability without a start hook is then imported only
there.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from .routing import ServiceApp, route_path

__all__ = ["DeferredApp"]


class DeferredApp(ServiceApp):
    """A :class:`~aiservice.api.routing.ServiceApp` whose deferred routers are included on
    first need (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        self._deferred: list[APIRouter | str] = []
        self._eager_paths: frozenset[str] = frozenset()
        super().__init__(**kwargs)

    def add_routers(self, routers: Iterable[tuple[APIRouter | str, bool]]) -> None:
        """``(router or module name, eager)`` in route order. An eager router after a
        deferred one waits with it: the order of the routes is kept."""
        paths = set(self._eager_paths)
        for router, eager in routers:
            if eager and not self._deferred and isinstance(router, APIRouter):
                self.include_router(router)
                paths.update(getattr(route, "path", "") for route in router.routes)
            else:
                self._deferred.append(router)
        self._eager_paths = frozenset(paths)

    @property
    def routes(self) -> list[BaseRoute]:
        self.include_deferred()
        return self.router.routes

    def include_deferred(self) -> None:
        """Include the routers not included yet (once; later calls do nothing)."""
        pending, self._deferred = self._deferred, []
        for entry in pending:
            router: APIRouter = (
                importlib.import_module(entry).router if isinstance(entry, str) else entry
            )
            self.include_router(router)
        if pending:
            # The middleware built its tables from the routes it saw: rebuilt on next call.
            self.middleware_stack = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._deferred
            and scope["type"] != "lifespan"
            and route_path(scope) not in self._eager_paths
        ):
            self.include_deferred()
        await super().__call__(scope, receive, send)

"""Routes declared at import, built when first used.

FastAPI builds a route's dependency tree and its pydantic fields (one ``TypeAdapter`` per
parameter, body and response model) when the route is declared, and once more for each
router that includes it, when the app first matches or lists its routes. For the ~30 routes
of the service that was most of ``create_app``, paid again by every cold start whose first
request needs none of them (a probe of ``/health/live``). :class:`DeferredRoute` keeps the
declaration's arguments and runs :class:`~fastapi.routing.APIRoute`'s constructor on the
first access to anything but its ``path`` and ``name`` (what ``include_router`` reads), so
the route, its OpenAPI entry and its behaviour are those of the route FastAPI would have
built at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import get_name

from . import pydantic_v1_probe

__all__ = ["DeferredRoute"]

# Before any route is built: building one would otherwise import pydantic.v1.
pydantic_v1_probe.install()


class DeferredRoute(APIRoute):
    """An :class:`APIRoute` whose constructor runs on first use (see the module docstring)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # Not APIRoute.__init__: only what including a router reads before using the route.
        self.__dict__["_declaration"] = (path, endpoint, kwargs)
        self.path = path
        name = kwargs.get("name")
        self.name = get_name(endpoint) if name is None else name

    def __getattr__(self, attribute: str) -> Any:
        # Only called for attributes the instance lacks: before the build, all but two.
        declaration = self.__dict__.pop("_declaration", None)
        if declaration is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")
        path, endpoint, kwargs = declaration
        APIRoute.__init__(self, path, endpoint, **kwargs)
        return getattr(self, attribute)

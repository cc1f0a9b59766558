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

The request and response models of the routes derive from :class:`DeferredModel`: pydantic
builds their validators on first use instead of at class creation. The first route built
turns the deferral off (:func:`build_deferred_models`): FastAPI wraps each model in its own
``TypeAdapter`` while it silences a warning pydantic gives for its field metadata, and an
adapter of a deferred model would be built later, outside that guard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict
from starlette.routing import get_name

__all__ = ["DeferredModel", "DeferredRoute", "build_deferred_models"]


class DeferredModel(BaseModel):
    """Base of the API's models: validators built on first use (see the module docstring)."""

    model_config = ConfigDict(defer_build=True)


def build_deferred_models() -> None:
    """From now on, every :class:`DeferredModel` (and any defined later) builds as usual.

    The models not built yet are built on their first use, by pydantic, as before.
    """
    pending: list[type[BaseModel]] = [DeferredModel]
    while pending:
        model = pending.pop()
        if model.model_config.get("defer_build"):
            model.model_config["defer_build"] = False
        pending += model.__subclasses__()


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
        build_deferred_models()
        APIRoute.__init__(self, path, endpoint, **kwargs)
        return getattr(self, attribute)

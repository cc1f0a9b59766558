"""Cloud Functions (gen2) bridge: a whole ASGI app behind one functions-framework target.

functions-framework's ASGI mode (``functions_framework.aio``, enabled with ``--asgi`` or
``FUNCTION_USE_ASGI=true``) calls an ``@aio.http`` target with a Starlette request and
then calls whatever it returns as ``response(scope, receive, send)``. The target built by
:func:`gcp_function` returns an ASGI callable that runs the app on the *original* request
scope, so routing, streaming, ``root_path`` and error handling are the app's own. Neither
functions-framework nor Starlette's routing runs the app's lifespan, so startup runs once
per instance, on the first request, through :class:`~.lifespan.Lifespan`.

Nothing here creates clients or event-loop objects at import: gunicorn imports the
target in its master process and forks workers afterwards.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .events import dispatch_message, parse_message
from .lifespan import Lifespan

__all__ = ["gcp_function", "pubsub_function"]

log = logging.getLogger("aiservice.platforms")

# The keys of an ASGI HTTP scope; functions-framework's router adds its own ("router",
# "endpoint", "path_params", "app"...), which must not leak into the wrapped app.
_ASGI_KEYS = frozenset(
    {
        "type",
        "asgi",
        "http_version",
        "method",
        "scheme",
        "path",
        "raw_path",
        "query_string",
        "root_path",
        "headers",
        "client",
        "server",
        "extensions",
    }
)


def _forwarder(app: ASGIApp, lifespan: Lifespan) -> ASGIApp:
    async def forward(scope: Scope, receive: Receive, send: Send) -> None:
        inner = {key: value for key, value in scope.items() if key in _ASGI_KEYS}
        inner["state"] = lifespan.state.copy()
        await app(inner, receive, send)

    return forward


def gcp_function(app: ASGIApp, *, name: str = "handle") -> Callable[[Any], Awaitable[ASGIApp]]:
    """An async target function serving ``app``; decorate it with ``functions_framework.aio.http``.

    ``name`` must equal the module attribute it is assigned to (the ``--target``).
    """
    lifespan = Lifespan(app)
    forward = _forwarder(app, lifespan)

    async def target(request: Any) -> ASGIApp:
        await lifespan.startup()
        return forward

    target.__name__ = target.__qualname__ = name
    return target


def pubsub_function(
    app: ASGIApp, runtime: Any, *, name: str = "handle_pubsub"
) -> Callable[[Any], Awaitable[None]]:
    """A CloudEvent target for Pub/Sub push: the message data is a queue message with a ``kind``.

    Decorate it with ``functions_framework.aio.cloud_event``. Raising makes Pub/Sub redeliver;
    a message that can never succeed (not JSON, unknown ``kind``) is logged and acknowledged.
    """
    from .events import MessageError

    lifespan = Lifespan(app)

    async def target(event: Any) -> None:
        await lifespan.startup()
        data = (event.data or {}).get("message", {}).get("data", "")
        try:
            message = parse_message(base64.b64decode(data))
            await dispatch_message(runtime, message)
        except MessageError as exc:
            log.error("dropping Pub/Sub message %s: %s", event.get("id"), exc)

    target.__name__ = target.__qualname__ = name
    return target

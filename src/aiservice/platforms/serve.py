"""Container bridge: serve any ASGI app with uvicorn the way Cloud Run and Kubernetes expect.

* binds ``0.0.0.0:$PORT`` (the caller passes the port; 8080 by default);
* on SIGTERM stops accepting connections and lets in-flight requests finish for
  ``graceful_shutdown`` seconds (Cloud Run kills the instance 10 s after SIGTERM), then
  runs the app's shutdown;
* a request still without a response when that grace ends is answered ``503`` with the
  JSON error envelope (``code: shutting_down``; Anthropic's ``overloaded_error`` body on
  the Messages API) instead of uvicorn's plain-text 500, so clients (the OpenAI and
  Anthropic SDKs) see a retryable error; uvicorn's own hard stop comes
  :data:`FLUSH_SECONDS` later, once those answers are written;
* trusts ``X-Forwarded-*`` from ``forwarded_allow_ips`` (the platform's front end), so
  the app sees the client's scheme and address.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..error_shapes import error_body_for
from ..errors import ServiceUnavailableError, send_error

__all__ = [
    "FLUSH_SECONDS",
    "HEAD_TIMEOUT_ATTR",
    "ShutdownGuard",
    "head_bounded_http",
    "serve",
    "uvicorn_config",
]

STARTUP_PROBE_PATH = "/health/live"
"""Answered once startup finished: uvicorn accepts connections only after the lifespan."""

HEAD_TIMEOUT_ATTR = "aiservice_head_timeout"
"""Attribute of the ``uvicorn.Config`` holding the request-head deadline (``head_timeout``)."""

FLUSH_SECONDS = 1.0
"""Time between the end of the grace (503s sent) and uvicorn cancelling what is left."""


class ShutdownGuard:
    """ASGI wrapper that ends the requests still running when the shutdown grace is over.

    Each HTTP request registers the task it runs in (uvicorn's, one per request: no extra
    task on the hot path). :meth:`expire` cancels those whose response has not started;
    the cancellation is caught here and turned into a 503 envelope.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.expired = False
        self._waiting: dict[asyncio.Task[Any], bool] = {}  # task -> response started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] != "http" or task is None:
            await self.app(scope, receive, send)
            return
        self._waiting[task] = False

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._waiting[task] = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not self.expired or self._waiting[task]:
                raise
            task.uncancel()  # the cancellation came from expire(): answered below
            error = ServiceUnavailableError(
                "The server is shutting down; retry the request.",
                code="shutting_down",
                headers={"retry-after": "1"},
            )
            await send_error(send, error, error_body_for(error, scope))
        finally:
            self._waiting.pop(task, None)

    def expire(self) -> None:
        """The grace is over: cancel every request that has not started its response."""
        self.expired = True
        for task, started in list(self._waiting.items()):
            if not started:
                task.cancel(msg="graceful shutdown period ended")


def head_bounded_http() -> str:
    """uvicorn's ``http`` option: httptools bounded by ``h11_max_incomplete_event_size``
    (:mod:`.http_head`) when httptools is installed, else uvicorn's choice (h11, which
    honours that bound itself)."""
    if importlib.util.find_spec("httptools") is None:
        return "auto"
    from .http_head import PROTOCOL

    return PROTOCOL


def uvicorn_config(
    app: Any,
    *,
    host: str = "0.0.0.0",
    port: int = 8080,
    graceful_shutdown: float = 8.0,
    forwarded_allow_ips: str = "*",
    **options: Any,
) -> Any:
    """The ``uvicorn.Config`` used by :func:`serve` (separate so it can be inspected).

    uvicorn's own graceful timeout is the grace plus :data:`FLUSH_SECONDS`: the
    :class:`ShutdownGuard` answers what is left at the grace, uvicorn stops after.
    """
    import uvicorn

    head_timeout = options.pop("head_timeout", None)
    options.setdefault("log_config", None)
    options.setdefault("access_log", False)
    options.setdefault("proxy_headers", True)
    options.setdefault("http", head_bounded_http())
    # Cloud Run's front end keeps connections open for reuse; outlive its idle timeout
    # so a request never lands on a connection uvicorn is closing. None: this default.
    if options.get("timeout_keep_alive") is None:
        options["timeout_keep_alive"] = 650
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="auto",
        forwarded_allow_ips=forwarded_allow_ips,
        # uvicorn types it int, but it only waits: a fraction of a second is honoured.
        timeout_graceful_shutdown=cast(int, graceful_shutdown + FLUSH_SECONDS),
        **options,
    )
    if head_timeout is not None:
        # Read by the bounded httptools protocol (.http_head): uvicorn has no such option.
        setattr(config, HEAD_TIMEOUT_ATTR, head_timeout)
    return config


def serve(app: Any, *, graceful_shutdown: float = 8.0, **options: Any) -> None:
    """Run ``app`` until SIGTERM/SIGINT; see :func:`uvicorn_config` for ``options``."""
    import uvicorn

    guard = ShutdownGuard(app)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            # Starts when uvicorn stops accepting connections, like its own timeout.
            asyncio.get_running_loop().call_later(graceful_shutdown, guard.expire)
            await super().shutdown(sockets)

    config = uvicorn_config(guard, graceful_shutdown=graceful_shutdown, **options)
    Server(config).run()

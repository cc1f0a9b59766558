"""Outermost middleware: request id, trace context, access log, HTTP metrics, last-resort 500.

Pure ASGI (no ``BaseHTTPMiddleware``) so streaming responses pass through untouched and
the per-request cost stays a few microseconds.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..error_shapes import error_body_for
from ..errors import AIServiceError, send_error
from . import context
from .metrics import HTTP_LATENCY, HTTP_REQUESTS

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

__all__ = ["RequestContextMiddleware"]

log = logging.getLogger("aiservice.http")
UNMATCHED_ROUTE = "<unmatched>"


# The headers the request context reads, and their place in what _trace_headers returns.
_TRACE_HEADERS = {
    b"x-request-id": 0,
    b"traceparent": 1,
    b"tracestate": 2,
    b"x-cloud-trace-context": 3,
}


def _trace_headers(scope: Scope) -> list[str | None]:
    """``X-Request-ID``, ``traceparent``, ``tracestate`` and ``X-Cloud-Trace-Context`` (the
    first of each), in one pass over the headers."""
    found: list[str | None] = [None, None, None, None]
    for key, value in scope.get("headers", ()):
        index = _TRACE_HEADERS.get(key)
        if index is not None and found[index] is None:
            found[index] = value.decode("latin-1")  # latin-1 decodes any byte
    return found


@functools.cache
def _http_metrics(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
    """The labelled children of one route/method/status (templates keep it bounded)."""
    labels = (route, method, str(status))
    return HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels)


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/v1/models/{model_id}``), never the raw path."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestContextMiddleware:
    """The outermost layer of an aiservice app, and its error boundary: any exception that
    escapes the app, or this layer's own work, is logged with the request id and answered
    with the 500 envelope if no response has started (never a traceback)."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        status = 500
        started = False
        start = time.perf_counter()
        request_id = b""

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", request_id)]
                message = {**message, "headers": headers}
            await send(message)

        tokens = None
        try:
            rid, trace = context.request_trace(*_trace_headers(scope))
            request_id = rid.encode("latin-1")
            # bind(request_id=...) and trace(...) in one step: no generator per request.
            tokens = context.enter_request(rid, trace)
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Anything that escaped the app's handlers: log it here with the request id
            # and answer with the envelope; the traceback stays in the log.
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                request_id = request_id or context.new_request_id().encode("latin-1")
                await send_with_id_error(send_with_id, scope)
        finally:
            try:
                self._record(scope, status, time.perf_counter() - start)
            finally:
                if tokens is not None:
                    context.exit_trace(tokens)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        """HTTP metrics and the access log line (inside the request's log context)."""
        route = route_template(scope)
        method = scope.get("method", "")
        requests, latency = _http_metrics(route, method, status)
        requests.inc()
        latency.observe(elapsed)
        if self.access_log and log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s %s",
                method,
                scope.get("path", ""),
                status,
                extra={
                    "http_method": method,
                    "path": scope.get("path", ""),
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )


async def send_with_id_error(send: Send, scope: Scope) -> None:
    """The 500 in the shape of the API the request called (Anthropic's on /v1/messages)."""
    error = AIServiceError("internal server error")
    await send_error(send, error, error_body_for(error, scope))

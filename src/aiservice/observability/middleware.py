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

from ..errors import AIServiceError, send_error
from . import context
from .metrics import HTTP_LATENCY, HTTP_REQUESTS

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

__all__ = ["RequestContextMiddleware"]

log = logging.getLogger("aiservice.http")
UNMATCHED_ROUTE = "<unmatched>"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            try:
                decoded: str = value.decode("latin-1")
            except UnicodeDecodeError:
                return None
            return decoded
    return None


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
    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = context.sanitize_request_id(_header(scope, b"x-request-id"))
        traceparent = _header(scope, b"traceparent")
        trace = context.start_trace(
            traceparent,
            _header(scope, b"tracestate"),
            _header(scope, b"x-cloud-trace-context"),
        )
        if request_id is None:
            # A caller's W3C trace id doubles as the request id; otherwise a fresh one.
            caller = context.parse_traceparent(traceparent)
            request_id = caller[0] if caller else context.new_request_id()
        status = 500
        started = False
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        with context.bind(request_id=request_id), context.trace(trace):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                # Anything that escaped the app's handlers: log it here with the request id
                # and answer with the envelope; the traceback stays in the log.
                log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
                if not started:
                    await send_with_id_error(send_with_id)
            finally:
                elapsed = time.perf_counter() - start
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


async def send_with_id_error(send: Send) -> None:
    await send_error(send, AIServiceError("internal server error"))

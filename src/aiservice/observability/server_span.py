"""The OpenTelemetry server span of each HTTP request (added by ``create_app`` only when
``tracing.enabled``).

Pure ASGI, inside :class:`~.middleware.RequestContextMiddleware`: that one has chosen the
request's trace context already, and the span takes its ids (see :mod:`.otel`). The span is
named ``METHOD /route/{template}`` once routing has matched, never with the raw path.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import context, tracing
from .middleware import route_template

__all__ = ["ServerSpanMiddleware"]


class ServerSpanMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = tracing.active()
        ctx = context.current_trace()
        if scope["type"] != "http" or tracer is None or ctx is None:
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "")
        attributes = {
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"),
        }
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        span = tracer.server_span(ctx, method, attributes)
        error: BaseException | None = None
        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            error = exc
            raise
        finally:
            route = route_template(scope)
            span.rename(f"{method} {route}")
            span.set("http.route", route)
            span.set("http.response.status_code", status)
            if status >= 500 and error is None:
                span.fail(str(status))
            span.__exit__(type(error) if error else None, error, None)

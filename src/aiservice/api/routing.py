"""The route class of every router: request bodies are read once, strictly, as JSON.

For a route that takes a body (POST, PUT, PATCH) the body is read here, before FastAPI's
own handling: a non-JSON ``Content-Type`` is refused with 415 (a missing one too, as
FastAPI's strict mode does: a browser form cannot send ``application/json`` without a
CORS preflight), then :func:`~aiservice.security.json_guard.parse_json_body` parses it
and refuses, with 400, what would only fail later as a 500. The parsed object is cached
on the request, so FastAPI's validation and ``await request.json()`` in a handler reuse
it: one parse per request, not two. An empty body is left to the route (a required
model answers 422, a flow takes ``{}``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import InvalidRequestError, UnsupportedMediaTypeError
from ..observability.middleware import RequestContextMiddleware
from ..runtime import Runtime
from ..security.json_guard import parse_json_body
from .deferred_route import DeferredRoute

__all__ = [
    "BODY_METHODS",
    "DirectRoutes",
    "JsonRoute",
    "ServiceApp",
    "direct_routes",
    "is_json_media_type",
    "read_json_body",
    "route_path",
    "served_by",
    "validated_body",
]

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or any ``application/*+json``, parameters ignored."""
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _body(request: Request) -> bytes:
    """``await request.body()`` without Starlette's async generator and its ``aclosing``
    (a large part of a small request's body handling); cached where ``body()`` keeps it."""
    if request._stream_consumed:
        raise RuntimeError("Stream consumed")
    receive = request.receive
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            request._is_disconnected = True
            raise ClientDisconnect
    request._stream_consumed = True
    request._body = raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return raw


def _content_type(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type: str = value.decode("latin-1")
            return content_type
    return None


async def read_json_body(request: Request) -> None:
    """Read, check and parse the body; the result is what ``request.json()`` returns."""
    try:
        raw = request._body if hasattr(request, "_body") else await _body(request)
    except ClientDisconnect as exc:  # nobody will read the answer; keep it out of the 500s
        raise InvalidRequestError("the client disconnected before the body was sent") from exc
    if not raw:
        return
    content_type = _content_type(request.scope)
    if not is_json_media_type(content_type):
        raise UnsupportedMediaTypeError(
            f"request body must be application/json, not {content_type or 'untyped'}",
            param="Content-Type",
        )
    runtime: Runtime = request.app.state.aiservice
    # Starlette's json() returns this cached value: FastAPI's validation parses nothing.
    request._json = parse_json_body(raw, max_depth=runtime.settings.limits.max_json_depth)


M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=Callable[..., Any])

_DIRECT = "__aiservice_direct__"


def served_by(handler: Handler) -> Callable[[E], E]:
    """Serve a route with ``handler(request)`` instead of FastAPI's request handling.

    The decorated endpoint keeps its FastAPI signature: it documents the route (OpenAPI)
    and declares its protection (:func:`~aiservice.api.deps.route_protection`), but no
    dependency is solved per request. ``handler`` does what the signature says itself
    (dependencies in declaration order, then :func:`validated_body`); FastAPI's per-request
    dependency solving was the largest cost of a gateway request after the upstream call.
    While the app has ``dependency_overrides``, FastAPI serves the endpoint as declared
    instead, so the overrides apply (:class:`JsonRoute`, :class:`DirectRoutes`).
    """

    def mark(endpoint: E) -> E:
        setattr(endpoint, _DIRECT, handler)
        return endpoint

    return mark


def validated_body(model: type[M], request: Request) -> M:
    """The body parsed by :func:`read_json_body`, validated as FastAPI would: the same
    errors (``loc`` starting with ``body``), raised as :class:`RequestValidationError`."""
    value = getattr(request, "_json", None)
    if value is None:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        return model.model_validate(value, from_attributes=True)
    except ValidationError as exc:
        errors = [
            {**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)
        ]
        raise RequestValidationError(errors, body=value) from None


class JsonRoute(DeferredRoute):
    """An :class:`APIRoute` whose body, if it takes one, goes through :func:`read_json_body`;
    an endpoint marked with :func:`served_by` is served by its handler directly, unless the
    app has ``dependency_overrides`` (a library user's test): then FastAPI solves the
    endpoint's declared dependencies, so the overrides take effect as on any route."""

    def get_route_handler(self) -> Handler:
        direct: Handler | None = getattr(self.endpoint, _DIRECT, None)
        handler = super().get_route_handler()  # in FastAPI's inclusion context, as it wants
        if (self.methods or set()) & BODY_METHODS:
            handler = _json_guarded(handler)
        if direct is None:
            return handler
        fast, framework = self._direct(direct), handler

        async def served(request: Request) -> Response:
            # Only reached when DirectRoutes stepped aside or is not installed.
            if getattr(request.app, "dependency_overrides", None):
                return await framework(request)
            return await fast(request)

        return served

    def _direct(self, direct: Handler) -> Handler:
        if not (self.methods or set()) & BODY_METHODS:
            return direct
        return _json_guarded(direct)


def _json_guarded(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        await read_json_body(request)
        return await handler(request)

    return guarded


def route_path(scope: Scope) -> str:
    """The path routes match on: ``path`` without the ``root_path`` prefix (Starlette's
    rule, for an app mounted under a prefix or behind ``server.root_path``)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        if path == root_path:
            return ""
        if path[len(root_path)] == "/":
            return path[len(root_path) :]
    return path


def direct_routes(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], tuple[APIRoute, Handler]]:
    """``(method, path) -> (route, handler)`` for every :func:`served_by` route without
    path parameters (included routers flattened)."""
    table: dict[tuple[str, str], tuple[APIRoute, Handler]] = {}
    for context in iter_route_contexts(routes):
        route = context.original_route
        path = context.path
        if not isinstance(route, JsonRoute) or not path or "{" in path:
            continue
        direct: Handler | None = getattr(route.endpoint, _DIRECT, None)
        if direct is None:
            continue
        handler = route._direct(direct)
        for method in context.methods or ():
            table.setdefault((method, path), (route, handler))
    return table


class DirectRoutes:
    """Pure ASGI, innermost: a request for a :func:`served_by` route goes straight to its
    handler, found in one dict lookup, with the app's exception handlers applied as
    Starlette's would. Every other request takes the app's router as before, and so does
    every request while the app has ``dependency_overrides``: the router's route then
    solves the endpoint's dependencies as FastAPI does (see :class:`JsonRoute`).

    The router would find the same handler after matching the routes one by one, through
    two exit stacks and two exception wrappers per request; on the hot routes that
    framework path cost more than the gateway's own work.
    """

    def __init__(self, app: ASGIApp, *, fastapi: FastAPI) -> None:
        self.app = app
        self._fastapi = fastapi
        self._table: dict[tuple[str, str], tuple[APIRoute, Handler]] | None = None

    def table(self) -> dict[tuple[str, str], tuple[APIRoute, Handler]]:
        # Built on the first request, when every router has been included.
        if self._table is None:
            self._table = direct_routes(self._fastapi.router.routes)
        return self._table

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # The coroutine that serves the request is returned for the caller to await: no
        # frame of this layer stays on the request's stack (see _StartOnFirstRequest).
        if scope["type"] == "http" and not self._fastapi.dependency_overrides:
            entry = self.table().get((scope["method"], route_path(scope)))
            if entry is not None:
                return self._serve(entry, scope, receive, send)
        return self.app(scope, receive, send)

    async def _serve(
        self, entry: tuple[APIRoute, Handler], scope: Scope, receive: Receive, send: Send
    ) -> None:
        route, handler = entry
        scope["route"], scope["endpoint"], scope["path_params"] = route, route.endpoint, {}
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:
            handle = self._handler(exc)
            if handle is None:
                raise  # the outer layers answer 500, as for any route
            response = await handle(request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Callable[[Request, Exception], Any] | None:
        """The app's handler for ``exc``, looked up as Starlette's ExceptionMiddleware does
        (status code first, then the class hierarchy); ``Exception`` itself is left to the
        outer layers, as Starlette leaves it to ServerErrorMiddleware."""
        handlers = self._fastapi.exception_handlers
        if isinstance(exc, StarletteHTTPException) and exc.status_code in handlers:
            found: Callable[[Request, Exception], Any] = handlers[exc.status_code]
            return found
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                found = handlers[cls]
                return found
        return None


# FastAPI's native OpenTelemetry instrumentation, off: aiservice traces its own requests
# (tracing.*), and a second server span per request would trace each of them twice.
NO_FASTAPI_TELEMETRY = {"tracing": False, "metrics": False, "logs": False}


class ServiceApp(FastAPI):
    """FastAPI whose HTTP requests enter the app's own outermost middleware directly.

    Starlette puts its ``ServerErrorMiddleware`` around the user middleware and FastAPI its
    exception-telemetry and body-size layers, and ``FastAPI.__call__`` asks OpenTelemetry
    (reading the environment) on every request whether its telemetry is configured. None
    of them has work to do in an aiservice app: the outermost middleware,
    :class:`~aiservice.observability.middleware.RequestContextMiddleware`, answers every
    unhandled error with the 500 envelope itself, FastAPI's telemetry is off and no FastAPI
    body size is set. So an HTTP request skips them; lifespan and websocket scopes, and
    any app whose outermost layer is another (a middleware added after ``create_app``),
    take FastAPI's path unchanged.
    """

    def __init__(self, **options: Any) -> None:
        options.setdefault("telemetry", NO_FASTAPI_TELEMETRY)  # before 0.165: an extra
        super().__init__(**options)
        self._front: ASGIApp | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        self._front = self._outermost_boundary(stack)
        return stack

    def _outermost_boundary(self, stack: ASGIApp) -> ASGIApp | None:
        """The user middleware the stack starts with, when it is the error boundary and
        nothing outside it has work to do; else None (FastAPI's path)."""
        telemetry: dict[str, Any] = getattr(self, "_telemetry", {})
        if any(telemetry.get(key) for key in NO_FASTAPI_TELEMETRY):
            return None
        if getattr(self, "max_body_size", None) is not None:
            return None
        outermost: Any = self.user_middleware[0].cls if self.user_middleware else None
        if outermost is not RequestContextMiddleware:
            return None
        layer: Any = stack
        for _ in range(8):  # ServerErrorMiddleware, then FastAPI's layers, then ours
            if isinstance(layer, RequestContextMiddleware):
                return layer
            layer = getattr(layer, "app", None)
        return None

    def _before(self, scope: Scope) -> None:
        """Called with every scope before the app handles it (a subclass's hook)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._before(scope)
        if scope["type"] == "http":
            if self.middleware_stack is None:
                self.middleware_stack = self.build_middleware_stack()
            front = self._front
            if front is not None:
                # What FastAPI.__call__ and Starlette.__call__ set before their layers.
                if self.root_path:
                    scope["root_path"] = self.root_path
                scope["app"] = self
                await front(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

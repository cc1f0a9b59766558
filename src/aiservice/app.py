"""The application factory: one FastAPI app, whatever the platform."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import ModuleType

from fastapi import APIRouter, FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ._version import __version__
from .api.deferred_app import DeferredApp
from .api.deps import protection_table
from .api.errors import install_error_handlers
from .api.openapi import install_openapi
from .api.routing import DirectRoutes
from .config import Settings, load_settings
from .observability import tracing
from .observability.logging import configure_logging
from .observability.middleware import RequestContextMiddleware
from .runtime import Runtime
from .security.auth_gate import AuthGateMiddleware
from .security.body_limit import BodyLimitMiddleware

__all__ = ["CAPABILITIES", "create_app", "get_runtime", "settle_gc", "start_hooks"]

log = logging.getLogger("aiservice.app")

# Each capability is a module exposing an optional ``router`` (APIRouter) and an optional
# ``async def start(runtime)`` that builds its clients once per app. A module with a start
# hook declares the Runtime fields the hook sets (``PROVIDES``) and those it reads
# (``START_AFTER``): start_hooks orders the hooks from these, not from this tuple, whose
# order is only the order of the routes (and of the hooks that depend on nothing).
CAPABILITIES: tuple[str, ...] = (
    "aiservice.api.health",
    "aiservice.api.metrics",
    "aiservice.cache.state",
    "aiservice.api.openai_compat",
    "aiservice.api.anthropic_messages",
    "aiservice.api.responses_api",
    "aiservice.api.admin",
    "aiservice.api.orchestrate",
    "aiservice.api.tasks",
    "aiservice.api.vector_stores",
    "aiservice.api.vector_store_routes",
    "aiservice.api.files",
)

# Included at once: what a probe asks first, and the chat / embeddings routes, so that the
# first model call of a new instance (a Lambda cold start) does not also import and build
# every other API. The other routers are included when a request under their prefixes
# (ROUTER_PREFIXES) arrives, or anything lists the app's routes (api.deferred_app). Their
# routes build on first use.
EAGER_ROUTERS = frozenset(
    {"aiservice.api.health", "aiservice.api.metrics", "aiservice.api.openai_compat"}
)
# The path prefixes each deferred router serves: a request under one includes that router
# only (api.deferred_app); disjoint, and matching the routes (tests/api/test_deferred_routes.py).
ROUTER_PREFIXES: dict[str, tuple[str, ...]] = {
    "aiservice.api.anthropic_messages": ("/v1/messages",),
    "aiservice.api.responses_api": ("/v1/responses",),
    "aiservice.api.admin": ("/admin",),
    "aiservice.api.orchestrate": ("/orchestrate", "/executions"),
    "aiservice.api.tasks": ("/internal/tasks",),
    "aiservice.api.vector_store_routes": ("/v1/vector_stores",),
    "aiservice.api.files": ("/v1/files",),
}
# Capabilities with routes only (no start hook): imported when their routers are included,
# not at startup (tests/core/test_runtime_fields.py checks that they have no hook).
ROUTES_ONLY = frozenset(
    {
        "aiservice.api.anthropic_messages",
        "aiservice.api.responses_api",
        "aiservice.api.admin",
        "aiservice.api.tasks",
        "aiservice.api.vector_store_routes",
        "aiservice.api.files",
    }
)

StartHook = Callable[[Runtime], Awaitable[None]]


def _load_capabilities(names: tuple[str, ...]) -> list[ModuleType]:
    return [importlib.import_module(name) for name in names]


def start_hooks(modules: list[ModuleType]) -> list[StartHook]:
    """The modules' start hooks, each after the hooks that set the fields it reads.

    Ties keep the modules' order. A field no module provides adds no constraint: the hook
    that reads it copes with ``None`` (limits off) or raises a clear error (no state).
    """
    starting = [m for m in modules if hasattr(m, "start")]
    provider = {name: m for m in starting for name in getattr(m, "PROVIDES", ())}
    ordered: list[ModuleType] = []

    def visit(module: ModuleType, path: tuple[str, ...]) -> None:
        if module in ordered:
            return
        if module.__name__ in path:
            raise RuntimeError("capability start cycle: " + " -> ".join((*path, module.__name__)))
        for name in getattr(module, "START_AFTER", ()):
            if (before := provider.get(name)) is not None and before is not module:
                visit(before, (*path, module.__name__))
        ordered.append(module)

    for module in starting:
        visit(module, ())
    return [m.start for m in ordered]


class _StartOnFirstRequest:
    """Starts the runtime on the first request when no lifespan ran.

    Starlette does not run a mounted sub-app's lifespan, and some hosts run none, so an
    app mounted inside another service still gets its clients built (once).
    """

    def __init__(
        self, app: ASGIApp, runtime: Runtime, hooks: list[StartHook], lock: asyncio.Lock
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.hooks = hooks
        # The app's, not this instance's: including the deferred routers rebuilds the
        # middleware stack, possibly while a start is under way in the previous one.
        self._lock = lock

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Once started, the inner app's own coroutine is returned for the caller to await:
        # no frame of this layer stays on the request's stack (resumed at every await of
        # the request, a stream's every read included).
        if not self.runtime.started and scope["type"] == "http":
            return self._start_then(scope, receive, send)
        return self.app(scope, receive, send)

    async def _start_then(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self._lock:
            if not self.runtime.started:
                await self.runtime.start(self.hooks)
        await self.app(scope, receive, send)


GC_YOUNG_THRESHOLD = 10_000
"""The collector's youngest-generation threshold once started (CPython's default: 700)."""

_gc_settled = False


def settle_gc() -> None:
    """Once per process, when the app's startup has completed (its lifespan).

    ``gc.freeze()`` moves everything alive then (modules, settings, clients, pydantic
    validators: most of the heap) out of the collector's generations: a full collection no
    longer walks them (one took ~80 ms of CPU every few hundred requests under load). The
    young threshold goes from 700 to :data:`GC_YOUNG_THRESHOLD` allocations: the objects of
    the requests in flight, not garbage, were what triggered most young collections.
    Cyclic garbage is still collected, later. No ``gc.collect()`` first: it would lengthen
    every cold start, and what it could free at that point is a few dozen objects.
    """
    global _gc_settled
    if _gc_settled:
        return
    _gc_settled = True
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (unless the collector was already off).

    Building the app (its capabilities' imports, settings, routers) allocates tens of
    thousands of long-lived objects and almost no cyclic garbage: the young collections
    its allocations trigger, and the full one they lead to, walk objects that all stay
    alive. The first collection after the pause walks them once; the lifespan then
    freezes them (:func:`settle_gc`).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    """Build the aiservice ASGI app.

    ``settings`` defaults to :func:`~aiservice.config.load_settings` (files + environment).
    The returned app can be served directly, wrapped by :mod:`aiservice.platforms`, or
    mounted in another FastAPI app (its clients are then built on the first request).
    """
    with collector_paused():
        return _build_app(settings, configure_logs=configure_logs)


def _build_app(settings: Settings | None, *, configure_logs: bool) -> FastAPI:
    settings = settings if settings is not None else load_settings()
    if configure_logs:
        configure_logging(
            settings.logging.level, settings.logging.format, settings.logging.gcp_project
        )
    runtime = Runtime(settings)
    modules = _load_capabilities(tuple(n for n in CAPABILITIES if n not in ROUTES_ONLY))
    hooks = start_hooks(modules)
    # First: the other hooks' startup work is traced, and exporters see it all.
    hooks[:0] = tracing.start_hooks(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not runtime.started:
            await runtime.start(hooks)
        settle_gc()  # not on a first-request start: that one runs among requests
        try:
            yield
        finally:
            await runtime.close()

    app = DeferredApp(
        title=settings.service.name,
        version=__version__,
        lifespan=lifespan,
        root_path=settings.server.root_path,
        description="OpenAI-compatible LLM gateway, HTTP orchestrator and shared cache.",
    )
    app.state.aiservice = runtime
    install_error_handlers(app)
    loaded = {module.__name__: module for module in modules}
    routers: list[tuple[APIRouter | str, bool, tuple[str, ...]]] = []
    for name in CAPABILITIES:
        module = loaded.get(name)
        prefixes = ROUTER_PREFIXES.get(name, ())
        if module is None:  # ROUTES_ONLY: imported when its router is included
            routers.append((name, False, prefixes))
        elif getattr(module, "router", None) is not None:
            routers.append((module.router, name in EAGER_ROUTERS, prefixes))
    app.add_routers(routers)
    install_openapi(app, settings)

    # add_middleware wraps: the last one added is the outermost.
    # Innermost: the hot routes skip the router (every outer layer still applies).
    app.add_middleware(DirectRoutes, fastapi=app)
    limits = settings.limits
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=limits.max_body_bytes,
        body_timeout=limits.body_timeout_seconds,
    )
    # Outside the body clock: a cold start building clients is not the client's delay.
    app.add_middleware(_StartOnFirstRequest, runtime=runtime, hooks=hooks, lock=asyncio.Lock())
    # Outside the body limits: a caller without a key gets 401, not a 413 or a 408.
    app.add_middleware(
        AuthGateMiddleware,
        table=lambda: protection_table(app.router.routes, settings),
        keys=runtime.keys,
    )
    if settings.cors.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors.allowed_origins,
            allow_credentials=settings.cors.allow_credentials,
            allow_methods=settings.cors.allowed_methods,
            allow_headers=settings.cors.allowed_headers,
            expose_headers=["x-request-id"],
            max_age=settings.cors.max_age,
        )
    if settings.tracing.enabled:  # inside the request context: its span takes those ids
        from .observability.server_span import ServerSpanMiddleware

        app.add_middleware(ServerSpanMiddleware)
    app.add_middleware(RequestContextMiddleware, access_log=settings.logging.access_log)
    return app


def get_runtime(app: FastAPI) -> Runtime:
    """The :class:`~aiservice.runtime.Runtime` of an app built by :func:`create_app`."""
    runtime: Runtime = app.state.aiservice
    return runtime

"""AWS Lambda bridge for any ASGI app: ``handler = lambda_handler(app)`` or ``Mangum(app)``.

A drop-in replacement for Mangum (``from aiservice.platforms import Mangum``): the same
options (``lifespan``, ``api_gateway_base_path``, ``custom_handlers``, ``text_mime_types``,
``exclude_headers``), the same event translators (see :mod:`.lambda_http`), errors that are
also Mangum's exception classes. What it does differently, on purpose
(docs/deploy/lambda.md lists them):

* the app's lifespan runs **once per execution environment** on the thread's persistent
  event loop (Mangum's ``lifespan="auto"`` starts and stops the app on every invocation),
  and its shutdown runs when Lambda sends SIGTERM;
* a failure before the response is complete answers 500 with the JSON error envelope;
* VPC Lattice v2, cookies joined with ``"; "``, stage prefix as ``root_path``;
* non-HTTP events (:mod:`.lambda_events`): SQS batches with ``batchItemFailures``,
  EventBridge / schedules, SNS and S3 through configured actions; anything else fails
  with one structured log line and a message saying what would handle it.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import signal
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from mangum.exceptions import ConfigurationError as _MangumConfigurationError
from mangum.exceptions import LifespanFailure as _MangumLifespanFailure
from starlette.types import ASGIApp

from ..observability import tracing
from ..observability.context import bind
from .events import ActionContext
from .lambda_events import EVENT_KINDS, EventKind, unhandled
from .lambda_http import HttpEvent, build_scope, drop_headers, infer_http, run_http
from .lifespan import LIFESPAN_MODES, Lifespan, LifespanError, LifespanMode

if TYPE_CHECKING:
    from ..config import LambdaEventSettings
    from ..observability.sinks import MetricsSink

__all__ = ["ConfigurationError", "LambdaHandler", "LifespanFailure", "Mangum", "lambda_handler"]

log = logging.getLogger("aiservice.platforms")
# One INFO line per HTTP invocation, as Mangum's "mangum.http" logger writes; apps with their
# own access log (aiservice's middleware) turn it off with access_log=False.
access_log = logging.getLogger("aiservice.platforms.access")

# Mangum's defaults plus NDJSON (streamed admin output), which API Gateway REST would
# otherwise hand to clients base64-encoded unless binary media types are configured.
DEFAULT_TEXT_MIME_TYPES = [
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/vnd.api+json",
    "application/vnd.oai.openapi",
    "application/x-ndjson",
]


class LifespanFailure(LifespanError, _MangumLifespanFailure):
    """The app's startup failed; also ``mangum.exceptions.LifespanFailure`` for old handlers."""


class ConfigurationError(ValueError, _MangumConfigurationError):
    """An invalid option; also ``mangum.exceptions.ConfigurationError``."""


async def _resolve_literal(value: str) -> str:
    return value


def _thread_loop() -> tuple[asyncio.AbstractEventLoop, bool]:
    """The calling thread's event loop, or a new one set as current: ``(loop, made_here)``.

    As Mangum does: code that created async clients on ``asyncio.get_event_loop()`` before
    the handler existed must find them on the loop the app runs on.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "no current event loop" (3.12+)
        try:
            loop = asyncio.get_event_loop()
            if not loop.is_closed():
                return loop, False
        except RuntimeError:  # a thread without a loop (3.14+: any thread)
            pass
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop, True


class LambdaHandler:
    """Callable ``(event, context) -> response`` for the Lambda Python runtime.

    Mangum's options, keyword-only (:class:`Mangum` takes them positionally too):
    ``lifespan`` ("auto" | "on" | "off", see :mod:`.lifespan`), ``api_gateway_base_path``
    (stripped from REST paths), ``custom_handlers`` (translator classes tried before the
    built-in ones), ``text_mime_types`` (response types sent as text, not base64),
    ``exclude_headers`` (response headers dropped, any case).

    aiservice's: ``runtime`` is handed to queue-message handlers and event actions (the
    :class:`~aiservice.runtime.Runtime` when wrapping :func:`~aiservice.create_app`),
    ``events`` are the configured event actions, ``resolve`` turns ``secret://``
    references in them into values, ``kinds`` replaces the non-HTTP event kinds,
    ``access_log=False`` drops the ``"GET /path 200"`` INFO line per HTTP invocation.
    ``metrics`` is flushed at the end of every invocation, also a failed one; by default
    (``"auto"``) the sink ``metrics.sink`` names for an aiservice app, on Lambda.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifespan: LifespanMode = "auto",
        api_gateway_base_path: str = "/",
        custom_handlers: Sequence[type[Any]] | None = None,
        text_mime_types: list[str] | None = None,
        exclude_headers: list[str] | None = None,
        runtime: Any = None,
        events: Mapping[str, LambdaEventSettings] | None = None,
        resolve: Callable[[str], Awaitable[str]] | None = None,
        kinds: list[EventKind] | None = None,
        access_log: bool = True,
        install_signal_handlers: bool = True,
        metrics: MetricsSink | Literal["auto"] | None = "auto",
    ) -> None:
        if lifespan not in LIFESPAN_MODES:
            raise ConfigurationError(
                "Invalid argument supplied for `lifespan`. Choices are: auto|on|off"
            )
        self.app = app
        self.lifespan: LifespanMode = lifespan  # the mode, as Mangum's attribute
        self.custom_handlers = list(custom_handlers or [])
        self.config: dict[str, Any] = {  # Mangum's LambdaConfig, handed to translators
            "api_gateway_base_path": api_gateway_base_path or "/",
            "text_mime_types": text_mime_types or list(DEFAULT_TEXT_MIME_TYPES),
            "exclude_headers": [h.lower() for h in exclude_headers or []],
        }
        self.app_lifespan = Lifespan(app, mode=lifespan, error_type=LifespanFailure)
        self.runtime = runtime
        self.events = dict(events or {})
        self.kinds = kinds if kinds is not None else EVENT_KINDS
        self._resolve = resolve or _resolve_literal
        self._access_log = access_log
        self._signals = install_signal_handlers
        self.metrics = _configured_sink(app, runtime) if metrics == "auto" else metrics
        self._flush_failed = False
        # Bound now, as Mangum does, so the thread has its loop before the first event.
        self._loop, self._owns_loop = _thread_loop()
        atexit.register(self.close)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop kept for the whole execution environment."""
        if self._loop.is_closed():
            self._loop, self._owns_loop = _thread_loop()
        if self._signals:
            self._signals = False  # once per handler, on first use
            self._install_sigterm()
        return self._loop

    def __call__(self, event: Any, context: Any = None) -> Any:
        return self.loop.run_until_complete(self.handle(event, context))

    async def handle(self, event: Any, context: Any = None) -> Any:
        try:
            return await self._handle(event, context)
        finally:
            # Before returning: Lambda may freeze the environment right after.
            self._flush_metrics()
            self._flush_spans()

    async def _handle(self, event: Any, context: Any) -> Any:
        if not isinstance(event, dict):
            raise unhandled(event, f"the event is a {type(event).__name__}, not a JSON object")
        request_id = getattr(context, "aws_request_id", None)
        with bind(aws_request_id=request_id, xray_trace_id=xray_trace_id()):
            http = infer_http(event, context, self.config, self.custom_handlers)
            kind = None if http else next((k for k in self.kinds if k.matches(event)), None)
            if http is None and kind is None:
                raise unhandled(event, "it is neither an HTTP request nor a known event source")
            await self.app_lifespan.startup()
            if http is not None:
                return await self._serve(http, event)
            assert kind is not None
            return await kind.handle(self._action_context(), event, self.events)

    async def _serve(self, http: HttpEvent, event: dict[str, Any]) -> Any:
        builtin = not isinstance(http, tuple(self.custom_handlers))
        scope = build_scope(http, event, self._state(), builtin=builtin)
        if tracing.active() is not None:
            tracing.join_xray_trace(scope)
        response = await run_http(self.app, scope, http.body)
        if self._access_log:
            access_log.info("%s %s %s", scope["method"], scope["path"], response["status"])
        return http(drop_headers(response, self.config["exclude_headers"]))

    def _flush_metrics(self) -> None:
        if self.metrics is None:
            return
        try:
            self.metrics.flush()
        except Exception:  # metrics must never fail the invocation
            if not self._flush_failed:
                self._flush_failed = True
                log.warning("metrics flush failed (logged once)", exc_info=True)

    def _flush_spans(self) -> None:
        try:
            tracing.flush()
        except Exception:  # tracing must never fail the invocation either
            log.warning("span flush failed", exc_info=True)

    def _state(self) -> dict[str, Any] | None:
        """What requests get as ``scope["state"]``: none at all with ``lifespan="off"``."""
        return None if self.lifespan == "off" else self.app_lifespan.state

    def shutdown(self) -> None:
        """Run the app's shutdown (Lambda's SIGTERM, tests); the loop stays usable."""
        if self.app_lifespan.started:
            self.loop.run_until_complete(self.app_lifespan.shutdown())

    def close(self) -> None:
        """Shutdown, then close the loop if this handler made it (process exit, tests)."""
        loop = self._loop
        if loop.is_closed() or loop.is_running():
            return
        self.shutdown()
        if not self._owns_loop:
            return
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                if asyncio.get_event_loop() is loop:
                    asyncio.set_event_loop(None)
            except RuntimeError:
                pass

    def _action_context(self) -> ActionContext:
        return ActionContext(runtime=self.runtime, request=self._request, resolve=self._resolve)

    async def _request(
        self, method: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, bytes]:
        """An in-process request to the app (the ``http`` event action)."""
        path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": method,
            "scheme": "https",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [[b"host", b"lambda.internal"], *([k, v] for k, v in headers)],
            "server": ("lambda.internal", 443),
            "client": ("127.0.0.1", 0),
            "asgi": {"version": "3.0", "spec_version": "2.0"},
        }
        state = self._state()
        if state is not None:
            scope["state"] = state.copy()
        response = await run_http(self.app, scope, body)
        return response["status"], response["body"]

    def _install_sigterm(self) -> None:
        # Lambda sends SIGTERM before freezing an environment for good (when an extension
        # is registered); that is the only moment to close the app's clients.
        try:
            previous = signal.getsignal(signal.SIGTERM)

            def on_sigterm(signum: int, frame: Any) -> None:
                try:
                    if not self.loop.is_running():
                        self.shutdown()
                finally:
                    if callable(previous):
                        previous(signum, frame)
                    else:  # the default action (exit) still has to happen
                        signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)
                        os.kill(os.getpid(), signal.SIGTERM)

            signal.signal(signal.SIGTERM, on_sigterm)
        except ValueError:  # not the main thread (tests, embedded use): skip
            log.debug("SIGTERM handler not installed (not in the main thread)")


class Mangum(LambdaHandler):
    """``mangum.Mangum``'s signature, so migrating is an import change.

    The options are :class:`LambdaHandler`'s; Mangum's may be given positionally.
    """

    def __init__(
        self,
        app: ASGIApp,
        lifespan: LifespanMode = "auto",
        api_gateway_base_path: str = "/",
        custom_handlers: Sequence[type[Any]] | None = None,
        text_mime_types: list[str] | None = None,
        exclude_headers: list[str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            app,
            lifespan=lifespan,
            api_gateway_base_path=api_gateway_base_path,
            custom_handlers=custom_handlers,
            text_mime_types=text_mime_types,
            exclude_headers=exclude_headers,
            **options,
        )


def xray_trace_id() -> str | None:
    """The X-Ray trace id of the running invocation (``1-5759e988-bd862e3f...``).

    The Lambda runtime sets ``_X_AMZN_TRACE_ID`` anew for every invocation (it is not
    configuration, so it is read here, per invocation); the id goes on every log line as
    ``xray_trace_id``, the field Powertools uses, so CloudWatch lines join their trace.
    """
    header = os.environ.get("_X_AMZN_TRACE_ID", "")
    for part in header.split(";"):
        key, _, value = part.partition("=")
        if key.strip() == "Root" and value:
            return value.strip()
    return None


def _configured_sink(app: ASGIApp, runtime: Any) -> MetricsSink | None:
    """The sink an aiservice app's ``metrics`` settings name here; None for other apps."""
    from ..config import Settings

    if runtime is None:  # lambda_handler(create_app(...)) without runtime=
        runtime = getattr(getattr(app, "state", None), "aiservice", None)
    settings = getattr(runtime, "settings", None)
    if not isinstance(settings, Settings):
        return None
    from ..observability.sinks import make_sink

    return make_sink(settings, on_lambda=True)


def lambda_handler(app: ASGIApp, **options: Any) -> LambdaHandler:
    """Wrap any ASGI app for Lambda; see :class:`LambdaHandler` for ``options``."""
    return LambdaHandler(app, **options)

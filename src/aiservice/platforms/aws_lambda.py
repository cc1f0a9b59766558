"""AWS Lambda bridge for any ASGI app: ``handler = lambda_handler(app)``.

What it adds to Mangum (whose event translators it uses, see :mod:`.lambda_http`):

* the app's lifespan runs **once per execution environment** on a persistent event loop
  (Mangum's ``lifespan="auto"`` starts and stops the app on every invocation), and its
  shutdown runs when Lambda sends SIGTERM;
* VPC Lattice v2, merged multi-value cookies, stage prefix as ``root_path``;
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
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp

from ..observability.context import bind
from .events import ActionContext
from .lambda_events import EVENT_KINDS, EventKind, unhandled
from .lambda_http import build_scope, infer_http, run_http
from .lifespan import Lifespan

if TYPE_CHECKING:
    from ..config import LambdaEventSettings

__all__ = ["LambdaHandler", "lambda_handler"]

log = logging.getLogger("aiservice.platforms")

DEFAULT_TEXT_MIME_TYPES = [
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/vnd.api+json",
    "application/vnd.oai.openapi",
    "application/x-ndjson",
]


async def _resolve_literal(value: str) -> str:
    return value


class LambdaHandler:
    """Callable ``(event, context) -> response`` for the Lambda Python runtime.

    ``runtime`` is handed to queue-message handlers and event actions (the aiservice
    :class:`~aiservice.runtime.Runtime` when wrapping :func:`~aiservice.create_app`).
    ``resolve`` turns ``secret://`` references in event actions into values.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        runtime: Any = None,
        events: Mapping[str, LambdaEventSettings] | None = None,
        resolve: Callable[[str], Awaitable[str]] | None = None,
        api_gateway_base_path: str = "/",
        text_mime_types: list[str] | None = None,
        kinds: list[EventKind] | None = None,
        install_signal_handlers: bool = True,
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.events = dict(events or {})
        self.kinds = kinds if kinds is not None else EVENT_KINDS
        self.lifespan = Lifespan(app)
        self.config = {
            "api_gateway_base_path": api_gateway_base_path or "/",
            "text_mime_types": text_mime_types or list(DEFAULT_TEXT_MIME_TYPES),
            "exclude_headers": [],
        }
        self._resolve = resolve or _resolve_literal
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signals = install_signal_handlers

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop kept for the whole execution environment."""
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
            if self._signals:
                self._signals = False  # once per handler, not per loop
                self._install_sigterm()
            atexit.register(self.close)
        return self._loop

    def __call__(self, event: Any, context: Any = None) -> Any:
        return self.loop.run_until_complete(self.handle(event, context))

    async def handle(self, event: Any, context: Any = None) -> Any:
        if not isinstance(event, dict):
            raise unhandled(event, f"the event is a {type(event).__name__}, not a JSON object")
        request_id = getattr(context, "aws_request_id", None)
        with bind(aws_request_id=request_id):
            http = infer_http(event, context, self.config)
            kind = None if http else next((k for k in self.kinds if k.matches(event)), None)
            if http is None and kind is None:
                raise unhandled(event, "it is neither an HTTP request nor a known event source")
            await self.lifespan.startup()
            if http is not None:
                scope = build_scope(http, event, self.lifespan.state)
                response = await run_http(self.app, scope, http.body)
                return http(response)
            assert kind is not None
            return await kind.handle(self._action_context(), event, self.events)

    def shutdown(self) -> None:
        """Run the app's shutdown (Lambda's SIGTERM, tests); the loop stays usable."""
        if self.lifespan.started:
            self.loop.run_until_complete(self.lifespan.shutdown())

    def close(self) -> None:
        """Shutdown, then close the loop (process exit, tests); a later call makes a new one."""
        if self._loop is None or self._loop.is_closed() or self._loop.is_running():
            return
        self.shutdown()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

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
            "state": self.lifespan.state.copy(),
        }
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


def lambda_handler(app: ASGIApp, **options: Any) -> LambdaHandler:
    """Wrap any ASGI app for Lambda; see :class:`LambdaHandler` for ``options``."""
    return LambdaHandler(app, **options)

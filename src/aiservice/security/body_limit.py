"""Request body limits in size and time, enforced while the body streams in.

A declared ``Content-Length`` over the size limit is refused at once; a chunked body is
counted as it streams and refused as soon as it crosses the limit, so an oversized upload
never sits in memory.

The whole body must arrive within ``body_timeout`` seconds of the request head: a client
that declares a body and then stalls (or trickles one byte a minute) gets a 408 and the
connection is closed, instead of holding a worker's connection open for ever. The clock
is an ASGI-level deadline around ``receive``, so it holds on every server and platform.
Once the body is complete, ``receive`` is passed through untouched (streaming responses
wait on it for the client's disconnect, for as long as the stream lasts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..error_shapes import error_body_for
from ..errors import AIServiceError, PayloadTooLargeError, RequestTimeoutError, send_error
from .eager import Resumed, first_step

__all__ = ["CLOSE", "BodyLimitMiddleware", "BodyRefused"]

CLOSE = {"connection": "close"}
"""The rest of a refused body is never read: the server must not reuse the connection."""


class BodyRefused(HTTPException):
    """An HTTPException so that FastAPI's body parsing re-raises it instead of turning it
    into a generic 400; the app's handler renders it as the envelope of ``error``."""

    def __init__(self, error: AIServiceError) -> None:
        super().__init__(error.status_code, error.message, headers=error.headers)
        self.error = error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, body_timeout: float = 30.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    def _too_large(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"request body exceeds the limit of {self.max_body_bytes} bytes",
            param="limits.max_body_bytes",
            headers=CLOSE,
        )

    def _too_slow(self) -> RequestTimeoutError:
        return RequestTimeoutError(
            f"request body not received within {self.body_timeout:g} seconds",
            param="limits.body_timeout_seconds",
            headers=CLOSE,
        )

    def _declared_too_large(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value) > self.max_body_bytes
                except ValueError:
                    return False  # the server rejects a malformed Content-Length itself
        return False

    async def _within(self, receive: Receive, deadline: float) -> Message:
        """``await receive()`` by ``deadline``. A body the server has buffered already
        (the common small request) comes back without suspending: then no timer is set
        (:func:`~.eager.first_step`); only a receive that has to wait runs on the clock."""
        try:
            awaitable = receive()
            if isinstance(awaitable, Coroutine):
                done, value = first_step(awaitable)
                if done:
                    message: Message = value
                    return message
                awaitable = Resumed[Message](value)
            async with asyncio.timeout_at(deadline):
                return await awaitable
        except TimeoutError:
            raise BodyRefused(self._too_slow()) from None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_too_large(scope):
            error = self._too_large()
            await send_error(send, error, error_body_for(error, scope))
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        received = 0
        complete = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            message = await self._within(receive, deadline)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyRefused(self._too_large())
                complete = not message.get("more_body", False)
            else:
                complete = True  # http.disconnect: nothing more will come
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyRefused as exc:
            if not response_started:
                await send_error(send, exc.error, error_body_for(exc.error, scope))

"""The error envelope as an OpenAPI model, the ``responses=`` entries that declare it,
and the Server-Sent Events response of the streaming endpoints.

Routers declare the statuses their handler can answer (``errors(404, 502)``); the
statuses that come from the HTTP edge (bad JSON, size and time limits, content type,
validation, authentication, rate limits) are added to every operation they apply to by
:mod:`aiservice.api.openapi`, from the same facts the edge itself uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

__all__ = [
    "STATUS_DESCRIPTIONS",
    "ErrorDetail",
    "ErrorResponse",
    "EventStreamResponse",
    "InlineStreamingResponse",
    "error_response",
    "errors",
]

MAX_PENDING_BYTES = 64 * 1024
"""Events produced but not yet sent, above which reading from upstream waits for the
client (back-pressure: a slow client does not make the service buffer a whole answer)."""
BATCH_EVENTS = 64
"""Events per write at most while a burst is being produced (bounds an event's delay)."""


class ErrorDetail(BaseModel):
    model_config = ConfigDict(title="ErrorDetail")

    message: str
    type: str
    code: str | None
    param: str | None


class ErrorResponse(BaseModel):
    """``{"error": {"message", "type", "code", "param"}}``: every non-2xx answer."""

    error: ErrorDetail


STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid request: malformed JSON, a semantic rule broken, a bad header",
    401: "Missing or invalid API key",
    403: "The key may not call this endpoint (admin endpoints)",
    404: "Unknown model, flow, execution or resource",
    408: "The request body did not arrive within limits.body_timeout_seconds",
    409: "Conflicting request (an idempotency key reused with another body)",
    413: "The request body exceeds limits.max_body_bytes",
    415: "The request body is not application/json",
    422: "The body or a parameter does not match the schema",
    429: "Rate limit or budget exceeded",
    500: "Internal error (details are in the service logs, never in the response)",
    502: "An upstream (provider or flow step) failed",
    503: "A dependency is not ready or not reachable",
    504: "An upstream or the flow timed out",
}


def error_response(status: int) -> dict[str, Any]:
    """One OpenAPI response object (FastAPI ``responses=`` form) with the envelope.

    A reference to the schema rather than ``{"model": ErrorResponse}``: FastAPI builds a
    validator for every response model of every route when the route is declared, tens of
    milliseconds of cold start for a schema that only ``/openapi.json`` reads
    (:func:`~aiservice.api.openapi.build_openapi` adds ``ErrorResponse`` to its components).
    """
    schema = {"$ref": "#/components/schemas/ErrorResponse"}
    return {
        "description": STATUS_DESCRIPTIONS[status],
        "content": {"application/json": {"schema": schema}},
    }


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: error_response(status) for status in statuses}


class InlineStreamingResponse(StreamingResponse):
    """A ``StreamingResponse`` whose stream runs in the request's own task.

    Starlette's runs the stream and a listener for the client's disconnect in an anyio
    task group: two new tasks, started before the first byte goes out. Here the stream
    starts at once, and the listener (one plain task) only after the first body write,
    so it never delays the first event; once started it cancels the stream when the
    client goes away, as Starlette's does, and the response ends quietly.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None  # an ASGI app always runs in a task
        listener: asyncio.Task[None] | None = None
        gone = False

        async def listen() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            task.cancel()

        async def sending(message: Message) -> None:
            nonlocal listener
            await send(message)
            if listener is None and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    listener = asyncio.get_running_loop().create_task(listen())

        try:
            await self.stream_response(sending)
        except asyncio.CancelledError:
            if not gone:
                raise
            task.uncancel()  # the client left: the stream is over, nothing failed
        finally:
            if listener is not None and not listener.done():
                listener.cancel()
        if self.background is not None:
            await self.background()


class EventStreamResponse(InlineStreamingResponse):
    """``text/event-stream`` of already-framed events, sent in as few writes as possible.

        The events are pulled by a task of their own; each write to the client carries every
        event produced since the previous one. An upstream delivers many events per network
        read (a token stream is hundreds of tiny events), and one ASGI message per event costs
        a pass through every middleware and a socket write each: here a burst is one write,
        while the first event (and any event arriving alone) is sent the moment it exists, and
    a burst is cut every :data:`BATCH_EVENTS` events.
        Client disconnects end the stream (:class:`InlineStreamingResponse`).
    """

    def __init__(
        self, events: AsyncIterator[bytes], *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(events, headers=headers, media_type="text/event-stream")
        self._events = events

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        # The first event goes out alone, at once: the client's time to first token.
        async for first in self._events:
            await send({"type": "http.response.body", "body": first, "more_body": True})
            break
        pending: list[bytes] = []
        size = 0
        done = False
        ready = asyncio.Event()  # something to send, or the end
        room = asyncio.Event()  # the pending bytes fell under the bound

        async def produce() -> None:
            nonlocal size, done
            try:
                async for event in self._events:
                    if not pending:  # the writer waits only when nothing is pending
                        ready.set()
                    pending.append(event)
                    size += len(event)
                    if size > MAX_PENDING_BYTES:
                        room.clear()
                        await room.wait()
                    elif len(pending) >= BATCH_EVENTS:
                        # Events that arrive faster than they are produced (a buffered
                        # burst) would otherwise all wait for the end of the burst.
                        await asyncio.sleep(0)
            finally:
                done = True
                ready.set()

        producer = asyncio.create_task(produce())
        try:
            while True:
                if not pending:
                    if done:
                        break
                    ready.clear()
                    await ready.wait()
                    continue
                body = pending[0] if len(pending) == 1 else b"".join(pending)
                pending.clear()
                size = 0
                room.set()
                await send({"type": "http.response.body", "body": body, "more_body": True})
            await producer  # the producer's own failure, if any, is this response's
        finally:
            if not producer.done():
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer
        await send({"type": "http.response.body", "body": b"", "more_body": False})

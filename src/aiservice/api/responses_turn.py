"""The pieces of one ``/v1/responses`` request: the stored conversation it continues, the
chat request it becomes, the SSE framing of its events, and keeping its answer.

:mod:`aiservice.api.responses_api` wires them into the routes.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..cache.response_store import ResponseStore, StoredResponse
from ..errors import AIServiceError, InvalidRequestError, NotFoundError, ServiceUnavailableError
from ..llm.deployments import Deployment
from ..llm.wire.responses import to_chat_request
from ..llm.wire.responses_stream import ResponseEvents
from ..providers.base import ChatRequest
from ..runtime import Runtime
from ..security.apikeys import Principal
from .openai_schemas import ChatCompletionRequest
from .responses import InlineStreamingResponse

__all__ = [
    "Turn",
    "input_page",
    "chat_request",
    "event_stream",
    "native_sse",
    "new_id",
    "not_found",
    "open_store",
    "previous_record",
    "translated_sse",
]

log = logging.getLogger("aiservice.llm")

_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def open_store(runtime: Runtime) -> ResponseStore | None:
    """The stored responses, or ``None`` without the shared-state capability."""
    if runtime.state is None:
        return None
    from ..cache.state import get_durable_state

    return ResponseStore(get_durable_state(runtime), runtime.settings.responses)


def not_found(response_id: str, param: str | None = None) -> NotFoundError:
    return NotFoundError(
        f"no stored response {response_id!r} for this API key",
        code="response_not_found",
        param=param,
    )


async def previous_record(
    store: ResponseStore | None, principal: Principal, previous: str | None
) -> StoredResponse | None:
    """The stored response a ``previous_response_id`` names (404 if not this key's)."""
    if previous is None:
        return None
    if store is None:
        raise ServiceUnavailableError(
            "previous_response_id needs the shared-state capability", code="not_ready"
        )
    record = await store.load(principal, previous)
    if record is None:
        raise not_found(previous, "previous_response_id")
    return record


def chat_request(
    raw: dict[str, Any], messages: list[dict[str, Any]], deployments: list[Deployment]
) -> ChatRequest:
    """The provider request, checked by the chat route's own rules (400 naming the field)."""
    reasoning = all(d.config.type == "openai" for d in deployments)
    chat = to_chat_request(raw, messages, reasoning=reasoning)
    try:
        body = ChatCompletionRequest.model_validate(chat)
    except ValidationError as exc:  # a message or a tool the chat schema refuses
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidRequestError(f"{where}: {first['msg']}", param=where) from exc
    body.check()
    return body.provider_request()


@dataclass(slots=True)
class Turn:
    """What to keep of one request once its response is known."""

    store: ResponseStore | None
    """``None`` with ``store: false`` (or no shared state)."""
    principal: Principal
    conversation: list[dict[str, Any]]
    """The history continued, then this request's input items."""
    native: bool
    history: int = 0
    """How many items of ``conversation`` are history (the rest is this request's input)."""

    async def save(self, response: dict[str, Any]) -> None:
        """Keep the response (``store: true``); say ``store: false`` when it could not be."""
        if not response.get("store", True) or response.get("status") == "failed":
            return
        record = {
            "response": response,
            "input": self.conversation,
            "history": self.history,
            "native": self.native,
        }
        if self.store is None or not await self.store.save(self.principal, record):
            response["store"] = False


def frame(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


def event_stream(events: AsyncIterator[bytes], headers: dict[str, str]) -> InlineStreamingResponse:
    return InlineStreamingResponse(
        events,
        media_type="text/event-stream",
        headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def translated_sse(
    events: ResponseEvents, chunks: AsyncIterator[dict[str, Any]], turn: Turn
) -> AsyncIterator[bytes]:
    """Chat chunks as events; a failure midway ends the stream with ``response.failed``."""
    for event in events.start():
        yield frame(event)
    ending: Iterable[dict[str, Any]]
    try:
        async for chunk in chunks:
            for event in events.feed(chunk):
                yield frame(event)
        ending = events.finish()
        if events.response is not None:
            await turn.save(events.response)  # before the last event: a client may continue
    except AIServiceError as exc:
        ending = events.fail(exc.code, exc.message)
    except Exception:  # the status line is gone: report in-band, keep the trace in logs
        log.exception("stream failed")
        ending = events.fail("server_error", "internal server error")
    for event in ending:
        yield frame(event)


async def native_sse(events: AsyncIterator[dict[str, Any]], turn: Turn) -> AsyncIterator[bytes]:
    """The upstream's events as sent; a failure midway is an ``error`` event."""
    sequence = 0
    try:
        async for event in events:
            sequence = int(event.get("sequence_number") or sequence) + 1
            if event.get("type") in _TERMINAL and isinstance(event.get("response"), dict):
                await turn.save(event["response"])  # before the client can continue from it
            yield frame(event)
    except AIServiceError as exc:
        error = {"type": "error", "code": exc.code, "message": exc.message, "param": exc.param}
        yield frame({**error, "sequence_number": sequence})
    except Exception:
        log.exception("stream failed")
        error = {"type": "error", "code": "server_error", "message": "internal server error"}
        yield frame({**error, "param": None, "sequence_number": sequence})


def input_page(
    record: StoredResponse, *, after: str | None, limit: int, order: str
) -> dict[str, Any]:
    """One page of a stored response's own input items (``GET .../input_items``)."""
    items = list(record["input"][int(record.get("history") or 0) :])
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(items) > limit,
    }

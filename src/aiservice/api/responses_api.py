"""The OpenAI Responses API: ``POST /v1/responses``, ``GET`` / ``DELETE /v1/responses/{id}``.

Thin by design: the request is translated onto the chat format
(:mod:`aiservice.llm.wire.responses`), sent through the same response cache, coalescing,
gateway (retries, fallback, accounting) and rate limits as ``/v1/chat/completions``, and
the completion or its chunks are turned back into a ``response`` object or its events
(:mod:`aiservice.llm.wire.responses_stream`). The headers are those of the chat route:
``x-aiservice-cache``, the answering deployment, ``x-ratelimit-*``.

With ``store`` (the default, as at OpenAI) the response and its conversation are kept on
the state backend for ``responses.ttl`` seconds (:mod:`aiservice.cache.response_store`):
``previous_response_id`` continues from it and ``GET /v1/responses/{id}`` reads it back,
both for the API key that created it only.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError

from ..cache.response_store import ResponseStore
from ..errors import AIServiceError, InvalidRequestError, NotFoundError, ServiceUnavailableError
from ..llm.gateway import Gateway
from ..llm.render import completion_body
from ..llm.wire.responses import (
    chat_messages,
    check_request,
    from_completion,
    input_items,
    to_chat_request,
)
from ..llm.wire.responses_stream import ResponseEvents
from ..runtime import Runtime
from ..security.apikeys import Principal
from .deps import CallerPrincipal
from .openai_compat import GatewayDep
from .openai_schemas import ChatCompletionRequest
from .ratelimit import RateLimited
from .responses import errors
from .responses_schemas import ResponseDeleted, ResponseObject, ResponsesRequest
from .routing import JsonRoute

__all__ = ["router"]

log = logging.getLogger("aiservice.llm")

router = APIRouter(tags=["openai"], route_class=JsonRoute)

_SSE = {
    "schema": {"type": "string"},
    "example": 'event: response.created\ndata: {"type": "response.created", ...}\n\n',
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _store(runtime: Runtime) -> ResponseStore | None:
    if runtime.state is None:  # no shared-state capability: nothing can be stored
        return None
    from ..cache.state import get_durable_state

    return ResponseStore(get_durable_state(runtime), runtime.settings.responses)


def _not_found(response_id: str) -> NotFoundError:
    return NotFoundError(
        f"no stored response {response_id!r} for this API key", code="response_not_found"
    )


async def _history(
    store: ResponseStore | None, principal: Principal, previous: str | None
) -> list[dict[str, Any]]:
    """The conversation a ``previous_response_id`` names: its input, then its output."""
    if previous is None:
        return []
    if store is None:
        raise ServiceUnavailableError(
            "previous_response_id needs the shared-state capability", code="not_ready"
        )
    record = await store.load(principal, previous)
    if record is None:
        error = _not_found(previous)
        error.param = "previous_response_id"
        raise error
    return [*record["input"], *record["response"]["output"]]


def _chat_request(raw: dict[str, Any], messages: list[dict[str, Any]], gateway: Gateway) -> Any:
    deployments = gateway.resolve(str(raw.get("model")))  # 404 before any work
    reasoning = all(d.config.type == "openai" for d in deployments)
    chat = to_chat_request(raw, messages, reasoning=reasoning)
    try:
        body = ChatCompletionRequest.model_validate(chat)
    except ValidationError as exc:  # a message or tool the chat schema refuses
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidRequestError(f"{where}: {first['msg']}", param=where) from exc
    body.check()
    return body.provider_request()


def _frame(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


@router.post(
    "/v1/responses",
    summary="Create a response (OpenAI Responses API)",
    response_model=None,
    responses={
        200: {
            "model": ResponseObject,
            "description": "The response (JSON), or with stream: true Server-Sent Events",
            "content": {"text/event-stream": _SSE},
        },
        **errors(404, 502, 503, 504),
    },
)
async def create_response(
    body: ResponsesRequest,
    principal: CallerPrincipal,
    gateway: GatewayDep,
    limits: RateLimited,
    http: Request,
) -> Response:
    raw: dict[str, Any] = await http.json()  # the fields as sent (parsed once, cached)
    check_request(raw)
    runtime: Runtime = http.app.state.aiservice
    store = _store(runtime)
    history = await _history(store, principal, body.previous_response_id)
    items = input_items(body.input, new_id)
    messages = chat_messages(history, "previous_response_id") + chat_messages(items)
    request = _chat_request(raw, messages, gateway)
    gateway.check_chat(request)  # limits.requests, before a cache hit could skip them
    from ..cache.llm import cached_chat, cached_stream

    keep = store if body.store else None
    response_id, created_at = new_id("resp"), int(time.time())
    conversation = [*history, *items]
    if body.stream:
        stream = await cached_stream(runtime, gateway, body.model, request, principal, http.headers)
        events = ResponseEvents(
            raw, id_=response_id, model=body.model, created_at=created_at, new_id=new_id
        )
        return StreamingResponse(
            _sse(events, stream.chunks, keep, principal, conversation),
            media_type="text/event-stream",
            headers={
                **stream.headers,
                **limits.headers,
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
            },
        )
    answer = await cached_chat(runtime, gateway, body.model, request, principal, http.headers)
    response = from_completion(
        answer.completion,
        raw,
        id_=response_id,
        model=body.model,
        created_at=created_at,
        new_id=new_id,
    )
    await _save(keep, principal, response, conversation)
    content = await completion_body(response)
    return Response(
        content, media_type="application/json", headers={**answer.headers, **limits.headers}
    )


async def _save(
    store: ResponseStore | None,
    principal: Principal,
    response: dict[str, Any],
    conversation: list[dict[str, Any]],
) -> None:
    """Keep the response (``store: true``); say ``store: false`` when it could not be."""
    if not response["store"]:
        return
    record = {"response": response, "input": conversation}
    if store is None or not await store.save(principal, record):
        response["store"] = False


async def _sse(
    events: ResponseEvents,
    chunks: AsyncIterator[dict[str, Any]],
    store: ResponseStore | None,
    principal: Principal,
    conversation: list[dict[str, Any]],
) -> AsyncIterator[bytes]:
    """The events; a failure midway ends the stream with ``response.failed``."""
    for event in events.start():
        yield _frame(event)
    ending: Iterable[dict[str, Any]]
    try:
        async for chunk in chunks:
            for event in events.feed(chunk):
                yield _frame(event)
        ending = events.finish()
        if events.response is not None:
            # Stored before the last event: a client may continue from it at once.
            await _save(store, principal, events.response, conversation)
    except AIServiceError as exc:
        ending = events.fail(exc.code, exc.message)
    except Exception:  # the status line is gone: report in-band, keep the trace in logs
        log.exception("stream failed")
        ending = events.fail("server_error", "internal server error")
    for event in ending:
        yield _frame(event)


@router.get(
    "/v1/responses/{response_id}",
    summary="A stored response",
    response_model=None,
    responses={200: {"model": ResponseObject, "description": "The response"}, **errors(404, 503)},
)
async def get_response(
    response_id: str, principal: CallerPrincipal, _: RateLimited, http: Request
) -> dict[str, Any]:
    store = _store(http.app.state.aiservice)
    record = await store.load(principal, response_id) if store is not None else None
    if record is None:
        raise _not_found(response_id)
    response: dict[str, Any] = record["response"]
    return response


@router.delete(
    "/v1/responses/{response_id}",
    summary="Delete a stored response",
    response_model=None,
    responses={200: {"model": ResponseDeleted, "description": "Deleted"}, **errors(404, 503)},
)
async def delete_response(
    response_id: str, principal: CallerPrincipal, _: RateLimited, http: Request
) -> dict[str, Any]:
    store = _store(http.app.state.aiservice)
    if store is None or not await store.delete(principal, response_id):
        raise _not_found(response_id)
    return {"id": response_id, "object": "response", "deleted": True}

"""The Anthropic Messages API: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

Thin by design: validate, translate (:mod:`aiservice.llm.wire.messages`), call the
gateway through the same response cache and coalescing as the chat route
(:func:`aiservice.llm.cache.calls.cached_stream`), render Anthropic's events
(:mod:`aiservice.llm.wire.messages_events`). Rate limits, usage accounting, fallbacks and
the ``x-aiservice-*`` / ``x-ratelimit-*`` headers are those of the chat route.

Every answer is streamed from the upstream and cached as one chunk list, so a stream and
a non-stream request share cache entries and render the same text: a non-stream request
gets the message those events build. A deployment that speaks the Messages API
(``anthropic``) receives the client's body as written and its events come back as they
were sent (:mod:`aiservice.providers.anthropic_native`).

Errors on these routes use Anthropic's body (:mod:`aiservice.error_shapes`), with the
statuses of the OpenAI envelope. A failure after the first event becomes the ``error``
event, as Anthropic sends it (the SDKs raise it), and the stream ends there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..error_shapes import anthropic_error
from ..errors import AIServiceError, InvalidRequestError
from ..llm.cache.calls import cached_stream
from ..llm.deployments import Deployment
from ..llm.errors import client_error
from ..llm.gateway import Gateway
from ..llm.wire.messages import to_chat_request, untranslatable
from ..llm.wire.messages_events import EventWriter, message_from_events, sse_event
from ..providers import wire
from ..providers.anthropic_native import MessagesNative, MessagesRequest
from ..providers.base import ChatChunk, ProviderError
from ..providers.counting import CountsChatTokens
from ..runtime import Runtime
from . import anthropic_schemas as schemas
from .deps import CallerPrincipal
from .openai_compat import GatewayDep, deployment_headers
from .ratelimit import RateLimited
from .responses import InlineStreamingResponse
from .routing import JsonRoute

__all__ = ["router"]

log = logging.getLogger("aiservice.llm")

router = APIRouter(tags=["anthropic"], route_class=JsonRoute)

TOKEN_COUNT_HEADER = "x-aiservice-token-count"
"""``upstream`` (the provider counted) or ``estimate`` (see docs/api.md)."""

_SSE = {"schema": {"type": "string"}, "example": "event: message_start\ndata: {...}\n\n"}


def _native(d: Deployment) -> bool:
    return isinstance(d.provider, MessagesNative)


def prepare(gateway: Gateway, model: str, body: dict[str, Any]) -> MessagesRequest:
    """The gateway request for ``body``; 404 for an unknown model, 400 for what one of its
    deployments cannot honour (named)."""
    deployments = gateway.resolve(model)
    translated = [d for d in deployments if not _native(d)]
    if translated and (field := untranslatable(body)) is not None:
        d = translated[0]
        raise InvalidRequestError(
            f"{field} is not supported by deployment {d.key} of model {model!r} "
            "(only Anthropic deployments honour it)",
            param=field,
        )
    chat = to_chat_request(body, strict=bool(translated))
    return MessagesRequest(chat, body)


async def _close(chunks: AsyncIterator[ChatChunk]) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()


async def _events(writer: EventWriter, chunks: AsyncIterator[ChatChunk]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            for event in writer.feed(chunk):
                yield sse_event(event)
        for event in writer.close():
            yield sse_event(event)
    except AIServiceError as exc:
        yield sse_event(anthropic_error(exc.status_code, exc.message))
    except Exception:  # the status line is gone: report in-band, keep the trace in logs
        log.exception("stream failed")
        yield sse_event(anthropic_error(500, "internal server error"))
    finally:
        await _close(chunks)


async def _message(writer: EventWriter, chunks: AsyncIterator[ChatChunk]) -> dict[str, Any]:
    events = []
    try:
        async for chunk in chunks:
            events += writer.feed(chunk)
    finally:
        await _close(chunks)
    return message_from_events([*events, *writer.close()])


@router.post(
    "/v1/messages",
    summary="Create a message (Anthropic Messages API)",
    response_model=None,
    responses={
        200: {
            "model": schemas.Message,
            "description": "The message (JSON), or with stream: true Server-Sent Events",
            "content": {"text/event-stream": _SSE},
        },
        404: {"description": "Unknown model"},
        502: {"description": "An upstream failed"},
        503: {"description": "A dependency is not ready"},
        504: {"description": "An upstream timed out"},
    },
)
async def create_message(
    body: schemas.MessagesRequest,
    principal: CallerPrincipal,
    gateway: GatewayDep,
    limits: RateLimited,
    http: Request,
) -> Response:
    raw: dict[str, Any] = await http.json()  # the client's body as sent (parsed once)
    request = prepare(gateway, body.model, raw)
    gateway.check_chat(request)  # limits.requests, before a cache hit could skip them
    runtime: Runtime = http.app.state.aiservice
    # The key covers the client's whole body: a Messages API deployment honours more of
    # it than the chat translation carries.
    key = {"api": "anthropic.messages", **raw}
    stream = await cached_stream(
        runtime, gateway, body.model, request, principal, http.headers, key_request=key
    )
    writer = EventWriter(body.model)
    headers = {**stream.headers, **limits.headers}
    if body.stream:
        return InlineStreamingResponse(
            _events(writer, stream.chunks),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"},
        )
    message = await _message(writer, stream.chunks)
    return JSONResponse(message, headers=headers)


def _estimate(body: dict[str, Any]) -> int:
    """~4 characters per token over the prompt's text and the tool definitions."""
    chat = to_chat_request(body, strict=False)
    parts = [wire.message_text(m) + json.dumps(m.get("tool_calls") or "") for m in chat["messages"]]
    text = "\n".join(parts) + json.dumps(chat.get("tools") or [])
    return wire.estimate_tokens(text)


@router.post(
    "/v1/messages/count_tokens",
    summary="Count the input tokens of a message (Anthropic Messages API)",
    response_model=None,
    responses={
        200: {"model": schemas.CountTokensResponse, "description": "The input token count"},
        404: {"description": "Unknown model"},
        502: {"description": "An upstream failed"},
        503: {"description": "A dependency is not ready"},
    },
)
async def count_tokens(
    body: schemas.CountTokensRequest,
    _: CallerPrincipal,
    gateway: GatewayDep,
    limits: RateLimited,
    http: Request,
) -> Response:
    raw: dict[str, Any] = await http.json()
    d = gateway.resolve(body.model)[0]
    provider = d.provider
    source = "upstream"
    try:
        if isinstance(provider, MessagesNative):
            sent = {k: v for k, v in raw.items() if k != "model"}
            tokens = await provider.count_message_tokens(d.model, sent)
        elif isinstance(provider, CountsChatTokens):
            chat = to_chat_request(raw)
            tokens = await provider.count_chat_tokens(d.model, chat)
        else:
            tokens, source = _estimate(raw), "estimate"
    except ProviderError as exc:
        raise client_error(exc, d.provider_name) from exc
    headers = {**deployment_headers(d), **limits.headers, TOKEN_COUNT_HEADER: source}
    return JSONResponse({"input_tokens": tokens}, headers=headers)

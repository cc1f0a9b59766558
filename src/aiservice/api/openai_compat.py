"""The OpenAI-compatible API: ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``.

Thin by design: validate the body, call one :class:`~aiservice.llm.gateway.Gateway`
method, format the answer in the OpenAI wire format. Every response names the deployment
that answered in ``x-aiservice-provider`` / ``x-aiservice-model``.

The ``model`` field of completions, stream chunks and embeddings is the public name the
client asked for, whichever deployment answered (see docs/gateway.md): fallbacks, cache
hits and upstream snapshot names never change what a client sees there.

Streams are Server-Sent Events of ``chat.completion.chunk`` objects ending with
``data: [DONE]``. The usage chunk is forwarded only with ``stream_options.include_usage``.
Any failure after the first chunk (the upstream resets, stalls past its timeout, sends
garbage, or the gateway itself fails) becomes the event ``data: {"error": {...}}`` (the
error envelope; the official SDKs raise it as ``APIError``), still followed by
``data: [DONE]``: the connection is never cut and the status line (200) never lies about
a half-sent body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.types import Send

from ..cache.ratelimit import Admission, PendingAdmission
from ..cache.state import charge_usage
from ..errors import AIServiceError, ServiceUnavailableError, UpstreamError
from ..llm.cache.calls import cached_chat, cached_embed, cached_stream
from ..llm.cache.responses import ResponseCache
from ..llm.deployments import Deployment
from ..llm.encode import StreamChunk, StreamRun, dumps
from ..llm.gateway import Gateway
from ..llm.limits import MAX_DEPTH
from ..llm.render import completion_body, embeddings_body
from ..providers.base import ChatChunk
from ..runtime import Runtime
from ..security.apikeys import Principal
from .deps import CallerPrincipal, require_api_key
from .openai_schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ModelInfo,
    ModelList,
)
from .ratelimit import RateLimited, enforce_rate_limits
from .responses import EventStreamResponse, InlineStreamingResponse, errors
from .routing import JsonRoute, served_by, validated_body

__all__ = ["GatewayDep", "get_gateway", "router", "start"]

log = logging.getLogger("aiservice.llm")

router = APIRouter(tags=["openai"], route_class=JsonRoute)

# The Runtime fields ``start`` sets and reads (see aiservice.app.start_hooks): the response
# cache is built on the shared state, token usage is charged to the rate limiter.
PROVIDES = ("gateway", "response_cache")
START_AFTER = ("state", "limiter")

# A model name that no deployment serves (404), the upstream failing or timing out.
_UPSTREAM = errors(404, 502, 503, 504)
_SSE = {
    "schema": {"type": "string"},
    "example": 'data: {"object": "chat.completion.chunk", ...}\n\ndata: [DONE]\n\n',
}


async def start(runtime: Runtime) -> None:
    """Build every configured provider once; close them with the app."""
    from ..llm.build import build_gateway  # the provider registry: loaded with the gateway

    gateway = await build_gateway(runtime.settings, runtime.secrets)
    runtime.stack.push_async_callback(gateway.aclose)
    runtime.gateway = gateway
    if runtime.state is not None:  # the response cache lives on the shared state
        responses = ResponseCache(runtime.state, runtime.settings)
        # Pushed after the backend: closed first, so running flights stop before it goes.
        runtime.stack.push_async_callback(responses.aclose)
        runtime.response_cache = responses
    # Token limits and budgets are charged from the usage of every upstream call.
    charge_usage(runtime, gateway.accountant)
    # Not required: a cooled-down deployment degrades the service, it does not stop it.
    runtime.health.add("llm", gateway.health, required=False)


async def get_gateway(request: Request) -> Gateway:
    # async and without RuntimeDep: FastAPI runs sync dependencies in a worker thread,
    # a hop that costs more than the rest of this lookup.
    runtime: Runtime = request.app.state.aiservice
    gateway = runtime.gateway
    if gateway is None:
        raise ServiceUnavailableError("the LLM gateway is not started", code="not_ready")
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def deployment_headers(d: Deployment) -> dict[str, str]:
    return {"x-aiservice-provider": d.provider_name, "x-aiservice-model": d.model}


def _event(value: Any) -> bytes:
    try:
        return b"data: " + dumps(value) + b"\n\n"
    except (ValueError, TypeError) as exc:  # a lone surrogate, a NaN
        raise UpstreamError(
            "the upstream answer cannot be sent as JSON text (invalid Unicode or number)",
            code="upstream_invalid_answer",
        ) from exc


_DONE = b"data: [DONE]\n\n"
_SSE_HEADERS = {
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # nginx ingress: do not buffer the stream
}


def is_usage_chunk(chunk: ChatChunk) -> bool:
    return not chunk.get("choices") and "usage" in chunk


async def sse_events(
    chunks: AsyncIterator[ChatChunk], include_usage: bool, model: str | None = None
) -> AsyncIterator[bytes]:
    """SSE framing, each chunk serialised once (with ``model``, the public name, when
    given); a failure midway becomes an error event, then ``[DONE]``."""
    try:
        async for chunk in chunks:
            if not include_usage and is_usage_chunk(chunk):
                continue
            # Serialised by the gateway already (see aiservice.llm.encode).
            if isinstance(chunk, StreamChunk) and chunk.wire and chunk.public_model == model:
                yield b"data: " + chunk.wire + b"\n\n"
            else:
                yield _event(chunk if model is None else {**chunk, "model": model})
    except AIServiceError as exc:
        # Error bodies are ASCII-safe only if their message is: fall back to escapes.
        yield b"data: " + json.dumps(exc.to_body()).encode() + b"\n\n"
    except Exception:  # the status line is gone: report in-band, keep the trace in logs
        log.exception("stream failed")
        yield b"data: " + json.dumps(AIServiceError("internal server error").to_body()).encode()
        yield b"\n\n"
    yield _DONE


def _frame(wires: list[bytes]) -> bytes:
    return b"data: " + b"\n\ndata: ".join(wires) + b"\n\n"


class BatchedEventStream(InlineStreamingResponse):
    """The SSE response of a stream whose chunks come in batches, one per network read
    (:attr:`~aiservice.llm.gateway.StreamResult.batches`): each batch's events are framed
    and sent in one write, as soon as it is read; the first chunk comes alone. The same
    bytes as :func:`sse_events` under :class:`EventStreamResponse`, without its producer
    task: a batch already holds everything one read brought, so there is nothing to
    gather (and uvicorn's ``send`` waits while the client is slow: back-pressure)."""

    def __init__(
        self,
        batches: AsyncIterator[list[ChatChunk]],
        include_usage: bool,
        model: str,
        headers: Mapping[str, str],
    ) -> None:
        # Starlette's own iteration (stream_response, overridden) never sees the batches.
        super().__init__(cast(Any, batches), headers=headers, media_type="text/event-stream")
        self._batches, self._include_usage, self._model = batches, include_usage, model

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        include_usage, model = self._include_usage, self._model
        wires: list[bytes] = []
        message: dict[str, Any] = {"type": "http.response.body", "body": b"", "more_body": True}
        try:
            async for batch in self._batches:
                # A read whose chunks go as they came (never a usage chunk): its events.
                if type(batch) is StreamRun and batch.public_model == model:
                    await send({**message, "body": batch.events})
                    continue
                wires = []
                for chunk in batch:
                    if not include_usage and is_usage_chunk(chunk):
                        continue
                    if (
                        isinstance(chunk, StreamChunk)
                        and chunk.wire
                        and chunk.public_model == model
                    ):
                        wires.append(chunk.wire)
                    else:
                        wires.append(_event({**chunk, "model": model})[6:-2])
                if wires:
                    await send({**message, "body": _frame(wires)})
                    wires = []
            tail = _DONE
        except AIServiceError as exc:
            # The batch's events before the one that failed, then the error (see sse_events).
            head = _frame(wires) if wires else b""
            tail = head + b"data: " + json.dumps(exc.to_body()).encode() + b"\n\n" + _DONE
        except Exception:
            log.exception("stream failed")
            head = _frame(wires) if wires else b""
            error = json.dumps(AIServiceError("internal server error").to_body()).encode()
            tail = head + b"data: " + error + b"\n\n" + _DONE
        await send({**message, "body": tail})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _chat_direct(http: Request) -> Response:
    """``chat_completions`` without FastAPI's dependency solving: the same steps in the
    same order (key, gateway, rate limit, then the body's validation)."""
    principal = await require_api_key(http)
    gateway = await get_gateway(http)
    body = validated_body(ChatCompletionRequest, http)
    # The rate-limit admission runs with the cache lookup, in one round trip.
    runtime: Runtime = http.app.state.aiservice
    limiter = runtime.limiter
    pending = limiter.pending(principal) if limiter is not None else None
    return await _chat(http, body, principal, gateway, None, pending)


async def _chat(
    http: Request,
    body: ChatCompletionRequest,
    principal: Principal,
    gateway: Gateway,
    limits: Admission | None,
    pending: PendingAdmission | None = None,
) -> Response:
    body.check()
    request = body.provider_request()
    runtime: Runtime = http.app.state.aiservice
    # limits.requests, before a cache hit could skip them. The body passed the strict JSON
    # parse (JsonRoute): its text is checked already unless deeper nesting is allowed.
    text_checked = runtime.settings.limits.max_json_depth <= MAX_DEPTH
    gateway.check_chat(request, text_checked=text_checked)
    # Response cache + coalescing (aiservice.llm.cache.calls); headers: x-aiservice-cache,
    # the answering deployment, x-ratelimit-*.
    if body.stream:
        stream = await cached_stream(
            runtime, gateway, body.model, request, principal, http.headers, admission=pending
        )
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        rate = _rate_headers(limits, stream.admission)
        headers = {**stream.headers, **rate, **_SSE_HEADERS}
        if stream.batches is not None:
            return BatchedEventStream(stream.batches, include_usage, body.model, headers)
        return EventStreamResponse(
            sse_events(stream.chunks, include_usage, body.model), headers=headers
        )
    answer = await cached_chat(
        runtime, gateway, body.model, request, principal, http.headers, admission=pending
    )
    # A copy: the completion may be the object held by the in-memory cache.
    completion = {**answer.completion, "model": body.model}
    content = await completion_body(completion)  # big answers: off the event loop
    rate = _rate_headers(limits, answer.admission)
    return Response(content, media_type="application/json", headers={**answer.headers, **rate})


def _rate_headers(limits: Admission | None, admitted: Admission | None) -> dict[str, str]:
    chosen = admitted if admitted is not None else limits
    return chosen.headers if chosen is not None else {}


@router.post(
    "/v1/chat/completions",
    summary="Chat completion (OpenAI-compatible)",
    response_model=None,
    responses={
        200: {
            "model": ChatCompletion,
            "description": "The completion (JSON), or with stream: true Server-Sent Events",
            "content": {"text/event-stream": _SSE},
        },
        **_UPSTREAM,
    },
)
@served_by(_chat_direct)
async def chat_completions(
    body: ChatCompletionRequest,
    principal: CallerPrincipal,
    gateway: GatewayDep,
    limits: RateLimited,
    http: Request,
) -> Response:
    return await _chat(http, body, principal, gateway, limits)


async def _embeddings_direct(http: Request) -> Response:
    """``embeddings`` without FastAPI's dependency solving (see :func:`_chat_direct`)."""
    principal = await require_api_key(http)
    gateway = await get_gateway(http)
    limits = await enforce_rate_limits(http, principal)
    body = validated_body(EmbeddingsRequest, http)
    return await _embeddings(http, body, principal, gateway, limits)


@router.post(
    "/v1/embeddings",
    summary="Embeddings (OpenAI-compatible)",
    response_model=None,
    responses={
        200: {"model": EmbeddingsResponse, "description": "One vector per input"},
        **_UPSTREAM,
    },
)
@served_by(_embeddings_direct)
async def embeddings(
    body: EmbeddingsRequest,
    principal: CallerPrincipal,
    gateway: GatewayDep,
    limits: RateLimited,
    http: Request,
) -> Response:
    return await _embeddings(http, body, principal, gateway, limits)


async def _embeddings(
    http: Request,
    body: EmbeddingsRequest,
    principal: Principal,
    gateway: Gateway,
    limits: Admission,
) -> Response:
    texts = body.texts()
    gateway.check_embeddings(texts, body.dimensions)  # limits.requests
    # Per-item embedding cache (aiservice.llm.cache.calls): only misses go upstream.
    result = await cached_embed(
        http.app.state.aiservice,
        gateway,
        body.model,
        texts,
        dimensions=body.dimensions,
        principal=principal,
        headers=http.headers,
    )
    usage = {"prompt_tokens": result.input_tokens, "total_tokens": result.input_tokens}
    content = await embeddings_body(
        result.vectors,
        as_base64=body.encoding_format == "base64",
        model=body.model,
        usage=usage,
    )
    return Response(
        content,
        media_type="application/json",
        headers={**result.headers, **limits.headers},
    )


def _model(name: str, owner: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": owner}


@router.get(
    "/v1/models",
    summary="Configured models",
    response_model=None,
    responses={200: {"model": ModelList, "description": "Every model name"}, **errors(503)},
)
async def list_models(_: RateLimited, gateway: GatewayDep) -> dict[str, Any]:
    data = [_model(name, gateway.resolve(name)[0].provider_name) for name in gateway.models()]
    return {"object": "list", "data": data}


@router.get(
    "/v1/models/{model_id:path}",
    summary="One model",
    response_model=None,
    responses={200: {"model": ModelInfo, "description": "The model"}, **errors(404, 503)},
)
async def get_model(model_id: str, _: RateLimited, gateway: GatewayDep) -> dict[str, Any]:
    deployments = gateway.resolve(model_id)  # 404 model_not_found
    return _model(model_id, deployments[0].provider_name)

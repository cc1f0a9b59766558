"""The OpenAI Responses API: ``POST /v1/responses``, ``GET`` / ``DELETE /v1/responses/{id}``,
``GET /v1/responses/{id}/input_items``.

Thin by design. By default the request is translated onto the chat format
(:mod:`aiservice.llm.wire.responses`) and sent through the same response cache,
coalescing, gateway (retries, fallback, accounting) and rate limits as
``/v1/chat/completions``; the completion or its chunks are turned back into a
``response`` object or its events (:mod:`aiservice.llm.wire.responses_stream`). The
headers are the chat route's: ``x-aiservice-cache``, the answering deployment,
``x-ratelimit-*``. A model whose deployments all declare ``responses_api: native`` is
passed through untranslated instead (:mod:`aiservice.llm.passthrough`).

With ``store`` (the default, as at OpenAI) the response and its conversation are kept on
the state backend for ``responses.ttl`` seconds (:mod:`aiservice.cache.response_store`):
``previous_response_id`` continues from it and ``GET /v1/responses/{id}`` reads it back,
both for the API key that created it only.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from ..errors import InvalidRequestError
from ..llm.cache.calls import cached_chat, cached_stream
from ..llm.cache.policy import CACHE_STATUS_HEADER, cache_requests
from ..llm.gateway import Gateway
from ..llm.passthrough import native_create, native_stream, serves_natively
from ..llm.render import completion_body
from ..llm.wire.responses import (
    chat_messages,
    check_native,
    check_request,
    input_items,
    native_body,
)
from ..llm.wire.responses_output import from_completion
from ..llm.wire.responses_stream import ResponseEvents
from ..runtime import Runtime
from .deps import CallerPrincipal
from .openai_compat import GatewayDep, deployment_headers
from .ratelimit import RateLimited
from .responses import errors
from .responses_schemas import InputItemList, ResponseDeleted, ResponseObject, ResponsesRequest
from .responses_turn import (
    Turn,
    chat_request,
    event_stream,
    input_page,
    native_sse,
    new_id,
    not_found,
    open_store,
    previous_record,
    translated_sse,
)
from .routing import JsonRoute

__all__ = ["router"]


class _Route(JsonRoute):
    """A 405 names every method of the path: ``GET`` and ``DELETE /v1/responses/{id}``
    are two routes, and Starlette's own 405 would name only the first one's."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            same_path = [r for r in router.routes if getattr(r, "path", None) == self.path]
            allowed = {m for r in same_path for m in getattr(r, "methods", None) or ()}
            allow = ", ".join(sorted(allowed | self.methods))
            raise HTTPException(status_code=405, headers={"Allow": allow})
        await super().handle(scope, receive, send)


router = APIRouter(tags=["openai"], route_class=_Route)

# What the ids of stored responses look like (ours: resp_<hex>; a native upstream's: the same).
ResponseId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]

_SSE = {
    "schema": {"type": "string"},
    "example": 'event: response.created\ndata: {"type": "response.created", ...}\n\n',
}


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
    deployments = gateway.resolve(body.model)  # 404 before any work
    native = serves_natively(deployments)
    check_native(raw) if native else check_request(raw)
    runtime: Runtime = http.app.state.aiservice
    store = open_store(runtime)
    previous = await previous_record(store, principal, body.previous_response_id)
    history = [] if previous is None else [*previous["input"], *previous["response"]["output"]]
    items = input_items(body.input, new_id)
    keep = store if body.store else None
    turn = Turn(keep, principal, [*history, *items], native, history=len(history))
    if native:
        expand = previous is not None and not previous.get("native")
        upstream = native_body(raw, turn.conversation, expand=expand)
        return await _native(gateway, body, upstream, turn, limits.headers)

    messages = chat_messages(history, "previous_response_id") + chat_messages(items)
    if not messages:
        raise InvalidRequestError("input must not be empty", param="input")
    request = chat_request(raw, messages, deployments)
    gateway.check_chat(request)  # limits.requests, before a cache hit could skip them
    # Response cache + coalescing (aiservice.llm.cache.calls), exactly as for chat.

    response_id, created_at = new_id("resp"), int(time.time())
    if body.stream:
        stream = await cached_stream(runtime, gateway, body.model, request, principal, http.headers)
        events = ResponseEvents(
            raw, id_=response_id, model=body.model, created_at=created_at, new_id=new_id
        )
        sse = translated_sse(events, stream.chunks, turn)
        return event_stream(sse, {**stream.headers, **limits.headers})
    answer = await cached_chat(runtime, gateway, body.model, request, principal, http.headers)
    response = from_completion(
        answer.completion,
        raw,
        id_=response_id,
        model=body.model,
        created_at=created_at,
        new_id=new_id,
    )
    await turn.save(response)
    content = await completion_body(response)
    return Response(
        content, media_type="application/json", headers={**answer.headers, **limits.headers}
    )


async def _native(
    gateway: Gateway,
    body: ResponsesRequest,
    upstream: dict[str, Any],
    turn: Turn,
    limit_headers: dict[str, str],
) -> Response:
    """The pass-through: the upstream's answer or events as sent (public model name)."""
    cache_requests("bypass").inc()
    if body.stream:
        events, d = await native_stream(gateway, body.model, upstream, turn.principal)
        headers = {CACHE_STATUS_HEADER: "bypass", **deployment_headers(d), **limit_headers}
        return event_stream(native_sse(events, turn), headers)
    response, d = await native_create(gateway, body.model, upstream, turn.principal)
    await turn.save(response)
    headers = {CACHE_STATUS_HEADER: "bypass", **deployment_headers(d), **limit_headers}
    content = await completion_body(response)
    return Response(content, media_type="application/json", headers=headers)


@router.get(
    "/v1/responses/{response_id}",
    summary="A stored response",
    response_model=None,
    responses={200: {"model": ResponseObject, "description": "The response"}, **errors(404, 503)},
)
async def get_response(
    response_id: ResponseId, principal: CallerPrincipal, _: RateLimited, http: Request
) -> dict[str, Any]:
    store = open_store(http.app.state.aiservice)
    record = await store.load(principal, response_id) if store is not None else None
    if record is None:
        raise not_found(response_id)
    response: dict[str, Any] = record["response"]
    return response


@router.get(
    "/v1/responses/{response_id}/input_items",
    summary="The input items of a stored response",
    response_model=None,
    responses={200: {"model": InputItemList, "description": "One page"}, **errors(404, 503)},
)
async def list_input_items(
    response_id: ResponseId,
    principal: CallerPrincipal,
    _: RateLimited,
    http: Request,
    after: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    store = open_store(http.app.state.aiservice)
    record = await store.load(principal, response_id) if store is not None else None
    if record is None:
        raise not_found(response_id)
    return input_page(record, after=after, limit=limit, order=order)


@router.delete(
    "/v1/responses/{response_id}",
    summary="Delete a stored response",
    response_model=None,
    responses={200: {"model": ResponseDeleted, "description": "Deleted"}, **errors(404, 503)},
)
async def delete_response(
    response_id: ResponseId, principal: CallerPrincipal, _: RateLimited, http: Request
) -> dict[str, Any]:
    store = open_store(http.app.state.aiservice)
    if store is None or not await store.delete(principal, response_id):
        raise not_found(response_id)
    return {"id": response_id, "object": "response", "deleted": True}

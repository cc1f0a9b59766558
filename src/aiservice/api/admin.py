"""Admin endpoints (admin keys only): ``POST /admin/models/pull``.

Pulls a model into a provider that can install models (Ollama, e.g. a Cloud Run sidecar
whose models live on a mounted bucket) and streams the progress as NDJSON, one object per
line (``{"status": "pulling ...", "completed": N, "total": M}`` ... ``{"status":
"success"}``). A failure before the first line is an ordinary HTTP error; a failure midway
is a last line ``{"error": {...}}``. With ``"stream": false`` the call waits and answers
one JSON object.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from ..errors import AIServiceError, InvalidRequestError
from ..llm.errors import client_error
from ..providers.base import ProviderError
from .deps import AdminPrincipal
from .openai_compat import GatewayDep
from .responses import errors
from .routing import JsonRoute

__all__ = ["PullRequest", "SupportsPull", "router"]

router = APIRouter(tags=["admin"], route_class=JsonRoute)


@runtime_checkable
class SupportsPull(Protocol):
    """A provider that can install models (optional capability beyond ``Provider``)."""

    name: str

    def pull(self, model: str) -> AsyncIterator[dict[str, Any]]: ...


class PullRequest(BaseModel):
    model: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")
    provider: str | None = None
    """Configured provider name; optional when exactly one provider can pull."""
    stream: bool = True


def _puller(gateway: GatewayDep, wanted: str | None) -> SupportsPull:
    providers = gateway.table.providers
    if wanted is not None:
        provider = providers.get(wanted)
        if provider is None:
            raise InvalidRequestError(f"no provider named {wanted!r}", param="provider")
        if not isinstance(provider, SupportsPull):
            raise InvalidRequestError(f"provider {wanted!r} cannot pull models", param="provider")
        return provider
    able = [p for p in providers.values() if isinstance(p, SupportsPull)]
    if len(able) != 1:
        names = ", ".join(p.name for p in able) or "none configured"
        raise InvalidRequestError(
            f"name the provider to pull into (providers that can pull: {names})",
            param="provider",
        )
    return able[0]


async def _ndjson(
    first: dict[str, Any], rest: AsyncIterator[dict[str, Any]], name: str
) -> AsyncIterator[str]:
    yield json.dumps(first) + "\n"
    try:
        async for progress in rest:
            yield json.dumps(progress) + "\n"
    except ProviderError as exc:
        yield json.dumps(client_error(exc, name).to_body()) + "\n"


_NDJSON = {"schema": {"type": "string"}, "example": '{"status": "pulling manifest"}\n'}


@router.post(
    "/admin/models/pull",
    summary="Pull a model into a provider (Ollama)",
    response_model=None,
    responses={
        200: {
            "description": "Progress as NDJSON (or one JSON object with stream: false)",
            "content": {"application/x-ndjson": _NDJSON, "application/json": {"schema": {}}},
        },
        **errors(502, 503, 504),
    },
)
async def pull_model(body: PullRequest, _: AdminPrincipal, gateway: GatewayDep) -> Response:
    provider = _puller(gateway, body.provider)
    progress = aiter(provider.pull(body.model))
    try:
        first = await anext(progress)
        if not body.stream:
            last = first
            async for item in progress:
                last = item
            return JSONResponse({**last, "model": body.model, "provider": provider.name})
    except ProviderError as exc:
        raise client_error(exc, provider.name) from exc
    except StopAsyncIteration as exc:
        raise AIServiceError(f"provider {provider.name!r} sent no progress") from exc
    return StreamingResponse(
        _ndjson(first, progress, provider.name),
        media_type="application/x-ndjson",
        headers={"x-aiservice-provider": provider.name, "x-accel-buffering": "no"},
    )

"""Prometheus text exposition at ``/metrics`` (public unless ``metrics.require_auth``)."""

from __future__ import annotations

from fastapi import APIRouter, Header, Response

from ..errors import NotFoundError
from ..observability.metrics import CONTENT_TYPE_LATEST, render
from ..security.apikeys import extract_key
from .deps import RuntimeDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(
    runtime: RuntimeDep,
    authorization: str | None = Header(None, include_in_schema=False),
    x_api_key: str | None = Header(None, include_in_schema=False),
) -> Response:
    if not runtime.settings.metrics.enabled:
        raise NotFoundError("metrics are disabled (metrics.enabled: false)")
    if runtime.settings.metrics.require_auth:
        await runtime.keys.authenticate(extract_key(authorization, x_api_key))
    body = render(created=runtime.settings.metrics.created_series)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

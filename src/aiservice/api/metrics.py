"""Prometheus text exposition at ``/metrics`` (public unless ``metrics.require_auth``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ..errors import NotFoundError
from ..observability.metrics import CONTENT_TYPE_LATEST, render
from .deps import MetricsPrincipal, RuntimeDep
from .responses import errors
from .routing import JsonRoute

router = APIRouter(tags=["metrics"], route_class=JsonRoute)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        },
        **errors(404),
    },
)
async def metrics(runtime: RuntimeDep, _: MetricsPrincipal) -> Response:
    if not runtime.settings.metrics.enabled:
        raise NotFoundError("metrics are disabled (metrics.enabled: false)")
    body = render(created=runtime.settings.metrics.created_series)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

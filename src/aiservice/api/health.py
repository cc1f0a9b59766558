"""Liveness and readiness. Public: probes do not carry API keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from .._version import __version__
from .deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/health/live", summary="Process is up")
async def live() -> dict[str, str]:
    return {"status": "ok"}


async def _ready(runtime: RuntimeDep) -> JSONResponse:
    results = await runtime.health.run()
    failed_required = [r for r in results if r.required and not r.ok]
    degraded = [r for r in results if not r.ok]
    status = (
        "fail" if failed_required or not runtime.started else ("degraded" if degraded else "ok")
    )
    body: dict[str, Any] = {
        "status": status,
        "version": __version__,
        "checks": {r.name: r.as_dict() for r in results},
    }
    return JSONResponse(body, status_code=503 if status == "fail" else 200)


router.add_api_route(
    "/health/ready", _ready, methods=["GET"], summary="Dependencies reachable", response_model=None
)
router.add_api_route(
    "/health", _ready, methods=["GET"], summary="Same as /health/ready", response_model=None
)

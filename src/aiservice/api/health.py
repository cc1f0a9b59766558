"""Liveness and readiness. Public: probes do not carry API keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from .._version import __version__
from .deps import RuntimeDep
from .routing import JsonRoute, served_by

router = APIRouter(tags=["health"], route_class=JsonRoute)

_READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Ready (status ok, or degraded when an optional check fails)"},
    503: {"description": "Not ready: a required check failed (same document, status fail)"},
}


# The schema FastAPI derives from ``-> dict[str, str]``, declared as such: a response model
# would build a response field (a TypeAdapter) with the route, on a cold start whose
# first request is this probe.
_LIVE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Successful Response",
        "content": {
            "application/json": {
                "schema": {
                    "additionalProperties": {"type": "string"},
                    "type": "object",
                    "title": "Response Live Health Live Get",
                }
            }
        },
    }
}


async def _live_direct(request: Request) -> Response:
    """The answer FastAPI would send for ``live``'s dict, without its router and request
    handling (their first run is a fair part of a cold start whose first request is this)."""
    return JSONResponse({"status": "ok"})


@router.get("/health/live", summary="Process is up", response_model=None, responses=_LIVE_RESPONSES)
@served_by(_live_direct)
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


for path, summary in (
    ("/health/ready", "Dependencies reachable"),
    ("/health", "Same as /health/ready"),
):
    router.add_api_route(
        path,
        _ready,
        methods=["GET"],
        summary=summary,
        response_model=None,
        responses=_READY_RESPONSES,
    )

"""Shared fixtures of the reliability probes: a real ML-function server on loopback.

Fixture names are prefixed (``edge_``) so probes of other areas can add their own here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..support.servers import serve_app

CLIENT_KEY = "edge-client-key-5f0c2a9e7b41d3c8a6e2"
ADMIN_KEY = "edge-admin-key-9d4b7e1f03a6c2e8b5d1"


def _function_app() -> Any:
    from starlette.applications import Starlette

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"echo": await request.json() if await request.body() else None})

    return Starlette(routes=[Route("/echo", echo, methods=["POST"])])


@pytest.fixture(scope="session")
def edge_function_url() -> Iterator[str]:
    """Base URL of a tiny JSON function (``POST /echo``) served by uvicorn on loopback."""
    with serve_app(_function_app(), lifespan="off") as url:
        yield url


def edge_config(function_url: str, **extra: Any) -> dict[str, Any]:
    """Every endpoint enabled: keys (client + admin), metrics behind auth, two flows."""
    echo_step = {"url": f"{function_url}/echo", "body": "${input}"}
    return {
        "auth": {"api_keys": [CLIENT_KEY], "admin_keys": [ADMIN_KEY]},
        "metrics": {"require_auth": True},
        "flows": {
            "greet": {
                "input": {
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "times": {"type": "integer"}},
                    "additionalProperties": False,
                },
                "steps": {"echo": echo_step},
            },
            "anything": {"steps": {"echo": echo_step}},
        },
        **extra,
    }

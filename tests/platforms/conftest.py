"""Shared helpers for the platform bridge tests: sample events and a probe app."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from aiservice.platforms.aws_lambda import LambdaHandler

# Sample events from the Powertools for AWS Lambda (Python) test suite (MIT-0, see NOTICE.md).
EVENTS_DIR = Path(__file__).resolve().parent / "events" / "aws"


def load_event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return copy.deepcopy(data)


def probe_app(calls: dict[str, int] | None = None) -> FastAPI:
    """An ordinary FastAPI app (not aiservice's) that echoes what it received."""
    from contextlib import asynccontextmanager

    counters = calls if calls is not None else {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        counters["startup"] = counters.get("startup", 0) + 1
        yield {"started_by": "lifespan"}
        counters["shutdown"] = counters.get("shutdown", 0) + 1

    app = FastAPI(lifespan=lifespan)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def echo(path: str, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-type") == "application/octet-stream":
            return Response(body, media_type="application/octet-stream")
        return Response(
            json.dumps(
                {
                    "method": request.method,
                    "path": "/" + path,
                    "root_path": request.scope.get("root_path", ""),
                    "query": sorted(request.query_params.multi_items()),
                    "cookies": dict(request.cookies),
                    "headers": dict(request.headers),
                    "body": body.decode("utf-8", "replace"),
                    "state": getattr(request.state, "started_by", None),
                }
            ),
            media_type="application/json",
        )

    return app


@pytest.fixture
def thread_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh current event loop for this test (handlers adopt the thread's loop)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def make_handler(thread_loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """Build LambdaHandlers (or ``cls``) that are shut down after the test."""
    made: list[LambdaHandler] = []

    def make(app: Any, cls: type[LambdaHandler] = LambdaHandler, **options: Any) -> LambdaHandler:
        options.setdefault("install_signal_handlers", False)
        handler = cls(app, **options)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()

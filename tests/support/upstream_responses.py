"""An OpenAI upstream that also serves the Responses API (``POST /v1/responses``), for the
pass-through tests: it answers with payloads in OpenAI's documented wire format
(``tests/llm/fixtures/responses/openai_response.json`` and ``..._stream.sse``), which hold
what no translation produces (a ``web_search_call`` item, citations), so a test can tell
an untranslated answer from a translated one. Failures inject as for chat; ``drop`` cuts a
stream after three events. Chat, embeddings and models are :class:`OpenAIUpstream`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.support.upstream_openai import OpenAIUpstream

FIXTURES = Path(__file__).resolve().parents[1] / "llm" / "fixtures" / "responses"
RESPONSE = (FIXTURES / "openai_response.json").read_text()
STREAM = (FIXTURES / "openai_response_stream.sse").read_text()


@dataclass
class ResponsesUpstream(OpenAIUpstream):
    @property
    def app(self) -> Starlette:
        app = super().app
        app.router.routes.append(Route("/v1/responses", self.responses, methods=["POST"]))
        return app

    async def responses(self, request: Request) -> Response:
        body, failure = await self._enter(request)
        if failure is not None and (response := await self._fail(failure, request)) is not None:
            return response
        if body.get("stream"):
            drop = failure is not None and failure.kind == "drop"
            return StreamingResponse(_events(drop), media_type="text/event-stream")
        return Response(RESPONSE, media_type="application/json")


async def _events(drop: bool) -> AsyncIterator[bytes]:
    for position, block in enumerate(STREAM.strip().split("\n\n")):
        if drop and position == 3:
            await asyncio.sleep(0.05)
            raise ConnectionResetError("simulated upstream drop")
        yield (block + "\n\n").encode()
        await asyncio.sleep(0)

"""JSON over HTTP for the translating providers (Anthropic, Gemini): requests and SSE
streams on an :class:`~aiservice.providers.upstream.UpstreamClient`.

Every failure leaves as a :class:`ProviderError` whose message has every credential in use
scrubbed (an upstream that echoes the key back, as some 401 bodies do, must not leak it
into logs or clients); the mapping itself lives in the client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

from .base import ProviderError
from .http import ServerSentEvent, SSEParser, scrub
from .upstream import ErrorMapper, UpstreamClient

__all__ = ["ErrorMapper", "JsonHttp", "scrub"]


class JsonHttp:
    """POST/GET JSON and stream SSE on the shared upstream session."""

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self.provider = client.provider

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any = None,
        params: Mapping[str, str] | None = None,
        *,
        secret: str | None = None,
    ) -> Any:
        return await self.client.json(
            method, url, headers=headers, body=body, params=params, secret=secret
        )

    async def stream(
        self,
        url: str,
        headers: Mapping[str, str],
        body: Any,
        params: Mapping[str, str] | None = None,
        *,
        secret: str | None = None,
    ) -> AsyncGenerator[ServerSentEvent, None]:
        """The SSE events of a streamed POST; errors before and during the stream map too."""
        lines = self.client.lines(url, headers=headers, body=body, params=params, secret=secret)
        parser = SSEParser()  # one loop per network read, not an async step per event
        async with aclosing(lines):  # an abandoned stream frees its connection now
            async for batch in lines:
                for event in parser.feed(batch):
                    yield event
            last = parser.close()
            if last is not None:
                yield last

    def event_json(self, event: ServerSentEvent) -> Any:
        try:
            return event.json()
        except json.JSONDecodeError as exc:
            raise ProviderError(
                f"{self.provider} sent an invalid stream event: {event.data[:100]!r}",
                kind="protocol",
                provider=self.provider,
            ) from exc

    async def aclose(self) -> None:
        await self.client.aclose()

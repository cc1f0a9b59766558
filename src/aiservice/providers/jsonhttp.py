"""JSON-over-HTTP calls for the translating providers (Anthropic, Gemini).

Wraps :mod:`aiservice.providers.http` so every failure leaves as a
:class:`ProviderError` whose message has every credential in use scrubbed (an upstream
that echoes the key back, as some 401 bodies do, must not leak it into logs or clients).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from typing import Any

import httpx

from ..security.redact import REDACTED, redact
from .base import ProviderError
from .http import (
    ServerSentEvent,
    encode_json,
    error_from_exception,
    error_from_response,
    iter_sse,
)

__all__ = ["ErrorMapper", "JsonHttp", "scrub"]

ErrorMapper = Callable[[httpx.Response, str], ProviderError]
"""Builds the error for a non-2xx response (body already read)."""


def scrub(error: ProviderError, secrets: Iterable[str]) -> ProviderError:
    """``error`` with every secret (and every registered secret) masked in its message."""
    message = error.message
    for secret in secrets:
        if secret:
            message = message.replace(secret, REDACTED)
    message = redact(message)
    if message == error.message:
        return error
    return ProviderError(
        message,
        kind=error.kind,
        status=error.status,
        retry_after=error.retry_after,
        provider=error.provider,
    )


def _content(body: Any) -> bytes | None:
    return None if body is None else encode_json(body)


def _typed(headers: Mapping[str, str], body: Any) -> Mapping[str, str]:
    return headers if body is None else {**headers, "content-type": "application/json"}


class JsonHttp:
    """POST/GET JSON and stream SSE on one pooled client, mapping every failure."""

    def __init__(
        self, client: httpx.AsyncClient, provider: str, on_error: ErrorMapper = error_from_response
    ) -> None:
        self.client = client
        self.provider = provider
        self.on_error = on_error

    @staticmethod
    def _fail(error: ProviderError, secret: str | None) -> ProviderError:
        return scrub(error, [secret] if secret else [])

    def _decode(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(
                f"{self.provider} returned invalid JSON", kind="protocol", provider=self.provider
            ) from exc

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
        try:
            response = await self.client.request(
                method, url, content=_content(body), headers=_typed(headers, body), params=params
            )
        except httpx.HTTPError as exc:
            raise self._fail(error_from_exception(exc, self.provider), secret) from exc
        if response.status_code >= 400:
            raise self._fail(self.on_error(response, self.provider), secret)
        return self._decode(response)

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
        try:
            async with self.client.stream(
                "POST", url, content=_content(body), headers=_typed(headers, body), params=params
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._fail(self.on_error(response, self.provider), secret)
                async for event in iter_sse(response):
                    yield event
        except httpx.HTTPError as exc:
            raise self._fail(error_from_exception(exc, self.provider), secret) from exc

    def event_json(self, event: ServerSentEvent) -> Any:
        try:
            return event.json()
        except json.JSONDecodeError as exc:
            raise ProviderError(
                f"{self.provider} sent an invalid stream event: {event.data[:100]!r}",
                kind="protocol",
                provider=self.provider,
            ) from exc

"""``gemini``: Google Gemini on Google AI (API key) or on Vertex AI (service account).

Configuration::

    gemini:  {type: gemini, api_key: secret://env/GEMINI_API_KEY}
    vertex:  {type: gemini, vertex: {project: my-project, location: us-central1}}

Google AI: ``POST {base}/v1beta/models/{model}:generateContent`` (``api_version``
overrides ``v1beta``), ``:streamGenerateContent?alt=sse``, ``:embedContent`` /
``:batchEmbedContents``, ``GET {base}/v1beta/models``; the key goes in ``x-goog-api-key``.
Vertex AI (``vertex`` set, no API key): ``https://{location}-aiplatform.googleapis.com/v1/
projects/{p}/locations/{l}/publishers/google/models/{model}:...`` with an OAuth bearer
token from application default credentials; embeddings use the Vertex ``:predict``
method, which also reports token counts. ``base_url`` replaces the host in both modes.

Testing seam: ``GeminiProvider(name, config, secrets, credentials=creds)`` uses the given
``google.auth.credentials.Credentials`` instead of application default credentials.

``count_chat_tokens`` calls ``:countTokens`` (Google AI: with the whole
``generateContentRequest``; Vertex AI: contents, system instruction and tools).

Token counts for Google AI embeddings are estimated (~4 characters per token): that API
reports none.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from . import wire
from .base import ChatChunk, ChatCompletion, ChatRequest, EmbeddingResult, ProviderError
from .gemini_auth import Target, build_target
from .gemini_translate import GeminiStream, from_generate_response, to_generate_request
from .http import Reply, error_from_response
from .jsonhttp import JsonHttp
from .upstream import build_client

if TYPE_CHECKING:
    from ..config import ProviderSettings
    from ..secrets.base import SecretResolver

__all__ = ["GeminiProvider", "gemini_error"]

BATCH_EMBED_LIMIT = 100
"""Google AI's maximum number of requests in one ``batchEmbedContents`` call."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_AUTH_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "ACCESS_TOKEN_EXPIRED"}


def gemini_error(response: Reply, provider: str) -> ProviderError:
    """Map a Google API error body: invalid keys are auth errors even though Google AI
    answers them with 400, and ``RetryInfo.retryDelay`` stands in for ``Retry-After``."""
    error = error_from_response(response, provider)
    try:
        details = response.json().get("error", {}).get("details") or []
    except (ValueError, AttributeError):
        return error
    kind, retry_after = error.kind, error.retry_after
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        if detail.get("reason") in _AUTH_REASONS:
            kind = "auth"
        match = _DURATION.match(str(detail.get("retryDelay", "")))
        if retry_after is None and match:
            retry_after = float(match.group(1))
    if (kind, retry_after) == (error.kind, error.retry_after):
        return error
    return ProviderError(
        error.message, kind=kind, status=error.status, retry_after=retry_after, provider=provider
    )


class GeminiProvider:
    """One configured Gemini upstream; see the module docstring."""

    def __init__(
        self,
        name: str,
        config: ProviderSettings,
        secrets: SecretResolver,
        *,
        credentials: Any = None,
    ) -> None:
        self.name = name
        self._target: Target = build_target(name, config, secrets, credentials)
        client = build_client(
            name, config, self._target.base_url, gemini_error, auth=self._target.auth
        )
        self._http = JsonHttp(client)

    async def chat(self, model: str, request: ChatRequest) -> ChatCompletion:
        body = to_generate_request(request)
        url = self._target.model_url(model, "generateContent")
        response = await self._http.request("POST", url, {}, body)
        return from_generate_response(response, model)

    async def stream_chat(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        body = to_generate_request(request)
        url = self._target.model_url(model, "streamGenerateContent")
        translator = GeminiStream(self.name, model)
        events = self._http.stream(url, {}, body, params={"alt": "sse"})
        async with aclosing(events):
            async for event in events:
                for chunk in translator.feed(self._http.event_json(event)):
                    yield chunk
        for chunk in translator.finish():
            yield chunk

    async def count_chat_tokens(self, model: str, request: ChatRequest) -> int:
        generate = to_generate_request(request)
        if self._target.vertex:
            keys = ("contents", "systemInstruction", "tools")
            body: dict[str, Any] = {k: generate[k] for k in keys if k in generate}
        else:
            model_name = f"models/{model.rsplit('/', 1)[-1]}"
            body = {"generateContentRequest": {"model": model_name, **generate}}
        url = self._target.model_url(model, "countTokens")
        response = await self._http.request("POST", url, {}, body)
        tokens = response.get("totalTokens") if isinstance(response, dict) else None
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise ProviderError(f"{self.name} returned no totalTokens", kind="protocol")
        return tokens

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingResult:
        if not inputs:
            return EmbeddingResult([], 0)
        if self._target.vertex:
            result = await self._embed_vertex(model, inputs, dimensions)
        else:
            vectors: list[list[float]] = []
            for start in range(0, len(inputs), BATCH_EMBED_LIMIT):
                batch = inputs[start : start + BATCH_EMBED_LIMIT]
                vectors.extend(await self._embed_batch(model, batch, dimensions))
            result = EmbeddingResult(vectors, sum(wire.estimate_tokens(t) for t in inputs))
        if len(result.vectors) != len(inputs):
            raise ProviderError(
                f"{self.name} returned {len(result.vectors)} embeddings for {len(inputs)} inputs",
                kind="protocol",
                provider=self.name,
            )
        return result

    async def _embed_batch(
        self, model: str, inputs: list[str], dimensions: int | None
    ) -> list[list[float]]:
        extra = {"outputDimensionality": dimensions} if dimensions else {}
        if len(inputs) == 1:
            body = {"content": {"parts": [{"text": inputs[0]}]}, **extra}
            url = self._target.model_url(model, "embedContent")
            response = await self._http.request("POST", url, {}, body)
            return [_values(response.get("embedding"))]
        model_name = f"models/{model.rsplit('/', 1)[-1]}"
        requests = [
            {"model": model_name, "content": {"parts": [{"text": text}]}, **extra}
            for text in inputs
        ]
        url = self._target.model_url(model, "batchEmbedContents")
        response = await self._http.request("POST", url, {}, {"requests": requests})
        return [_values(item) for item in response.get("embeddings") or []]

    async def _embed_vertex(
        self, model: str, inputs: list[str], dimensions: int | None
    ) -> EmbeddingResult:
        body: dict[str, Any] = {"instances": [{"content": text} for text in inputs]}
        if dimensions:
            body["parameters"] = {"outputDimensionality": dimensions}
        url = self._target.model_url(model, "predict")
        response = await self._http.request("POST", url, {}, body)
        predictions = [p.get("embeddings") or {} for p in response.get("predictions") or []]
        tokens = sum(int((p.get("statistics") or {}).get("token_count") or 0) for p in predictions)
        return EmbeddingResult([_values(p) for p in predictions], tokens)

    async def list_models(self) -> list[str]:
        headers = self._target.models_headers()
        names: list[str] = []
        params = {"pageSize": "1000"}
        while True:
            url = self._target.models_url()
            page = await self._http.request("GET", url, headers, params=params)
            for item in page.get("models") or page.get("publisherModels") or []:
                if item.get("name"):
                    names.append(item["name"].rsplit("/", 1)[-1])
            if not page.get("nextPageToken"):
                return names
            params = {"pageSize": "1000", "pageToken": page["nextPageToken"]}

    async def probe(self) -> str:
        """One page of the models list (API key or Vertex credentials): costs no tokens."""
        headers = self._target.models_headers()
        url = self._target.models_url()
        params = {"pageSize": "1"}
        await self._http.request("GET", url, headers, params=params)
        return "authenticated"

    async def aclose(self) -> None:
        await self._http.aclose()


def _values(embedding: Any) -> list[float]:
    values = embedding.get("values") if isinstance(embedding, dict) else None
    if not isinstance(values, list):
        raise ProviderError("gemini returned an embedding without values", kind="protocol")
    return [float(v) for v in values]

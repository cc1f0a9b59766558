"""``openai``: OpenAI and any OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Azure).

Config: ``base_url`` (default ``https://api.openai.com/v1``), ``api_key`` (value or
``secret://`` reference, resolved per request so rotation needs no restart; optional for
local servers), ``api_version`` (Azure style: sent as the ``api-version`` query parameter
and the key as an ``api-key`` header), ``headers``, ``timeout``.

The wire format is already ours, so translation is small: the request gets the upstream
model name and stream options; responses get usage filled in when an OpenAI-compatible
server leaves it out (estimated from the text, so cost accounting never sees zero).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from ..transport.auth import NO_AUTH
from . import wire
from .base import ChatChunk, ChatCompletion, ChatRequest, EmbeddingResult, ProviderError
from .http import KeyHeaders, NotFinite, SSEParser, bearer, exact_loads, iter_sse, loads
from .upstream import build_client, read_to_end

if TYPE_CHECKING:
    from ..config import ProviderSettings
    from ..secrets.base import SecretResolver

__all__ = ["DEFAULT_BASE_URL", "OpenAIProvider", "to_upstream", "from_upstream"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def to_upstream(model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The upstream body: our request plus model and, for streams, usage reporting."""
    body = {k: v for k, v in request.items() if v is not None}
    body["model"] = model
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _reply_text(choices: list[dict[str, Any]]) -> str:
    return "".join(wire.message_text(c.get("message") or {}) for c in choices)


def _prompt_text(request: ChatRequest) -> str:
    return "\n".join(wire.message_text(m) for m in request.get("messages", []))


def from_upstream(data: Any, request: ChatRequest, provider: str) -> ChatCompletion:
    """Validate the upstream completion's shape and make sure ``usage`` is filled."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise ProviderError(f"{provider} returned an unexpected body", kind="protocol")
    result = dict(data)
    result.setdefault("object", "chat.completion")
    if not result.get("usage"):
        result["usage"] = wire.usage(
            wire.estimate_tokens(_prompt_text(request)),
            wire.estimate_tokens(_reply_text(result["choices"])),
        )
    return result


class _StreamState:
    """What a stream needs to remember to produce its final usage chunk."""

    __slots__ = ("created", "finished", "id", "model", "text", "usage", "verbatim")

    def __init__(self) -> None:
        self.usage: dict[str, int] | None = None
        self.finished = False
        self.text: list[str] = []
        self.id, self.model, self.created = wire.new_id(), "", int(time.time())
        self.verbatim = True  # the last chunk taken is the parsed text, less a null usage

    def take(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk to forward (``None`` for a pure usage chunk, held back until the end).

        ``data`` was just parsed and is nobody else's: it is forwarded itself, without
        ``usage`` (OpenAI sends ``"usage": null`` in every chunk when asked for usage)."""
        usage = data.pop("usage", None)
        if usage is not None:
            self.verbatim = False
            if usage:
                self.usage = usage
        else:
            self.verbatim = True
        self.id = data.get("id") or self.id
        self.model = data.get("model") or ""
        choices = data.get("choices")
        if not choices:
            return None
        for choice in choices:
            content = (choice.get("delta") or {}).get("content")
            if content:
                self.text.append(content)
            if choice.get("finish_reason"):
                self.finished = True
        if "object" not in data:
            data["object"] = "chat.completion.chunk"
            self.verbatim = False
        return data

    def usage_chunk(self, request: ChatRequest) -> ChatChunk:
        usage = self.usage or wire.usage(
            wire.estimate_tokens(_prompt_text(request)),
            wire.estimate_tokens("".join(self.text)),
        )
        return wire.usage_chunk(self.id, self.model, self.created, usage)


class OpenAIProvider:
    def __init__(self, name: str, config: ProviderSettings, secrets: SecretResolver) -> None:
        self.name = name
        self.config = config
        base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._params = {"api-version": config.api_version} if config.api_version else None
        # Azure style sends the key as ``api-key``; everything else as a bearer token.
        build = (lambda key: {"api-key": key}) if config.api_version else bearer
        auth = KeyHeaders(secrets, config.api_key, build) if config.api_key else NO_AUTH
        self._client = build_client(name, config, base_url, auth=auth)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._client.json("POST", path, headers={}, body=body, params=self._params)

    async def chat(self, model: str, request: ChatRequest) -> ChatCompletion:
        data = await self._post("/chat/completions", to_upstream(model, request, stream=False))
        return from_upstream(data, request, self.name)

    async def stream_chat(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        async with aclosing(self._wire_batches(model, request)) as batches:
            async for batch in batches:
                for chunk, _ in batch:
                    yield chunk

    async def _wire_batches(
        self, model: str, request: ChatRequest
    ) -> AsyncGenerator[list[tuple[ChatChunk, str | None]], None]:
        """:meth:`stream_chat`, one list per network read, each chunk with the JSON text
        it was parsed from when it is forwarded unchanged and every number in it is finite
        (:func:`~aiservice.providers.http.loads_finite`); ``None`` when ``usage`` or a
        default ``object`` was taken out or put in, for an event the stream's end cut
        short and for the final usage chunk. The gateway may send that text instead of
        encoding the chunk again (:meth:`aiservice.llm.encode.ChunkEncoder.verbatim`)."""
        body = to_upstream(model, request, stream=True)
        state = _StreamState()
        parser = SSEParser()
        lines = self._client.lines("/chat/completions", headers={}, body=body, params=self._params)
        done = first = False
        take, parse = state.take, self._event_json
        # One loop over each network read's events: a token stream is hundreds of events,
        # and every async layer costs per event.
        async with aclosing(lines):  # an abandoned stream frees its connection now
            async for lines_read in lines:
                datas = parser.data(lines_read)
                if not datas:
                    continue
                fast = exact_loads(datas)
                out: list[tuple[ChatChunk, str | None]] = []
                try:
                    for data in datas:
                        if data[:1] == "{" and data[-1:] == "}":  # nothing around: usual
                            try:
                                value, text = fast(data), data
                            except (ValueError, NotFinite):
                                value, text = parse(data), None  # its value or its error
                        elif data.strip() == "[DONE]":
                            done = True
                            break
                        else:
                            value, text = parse(data), None
                        if type(value) is not dict or value.get("error"):
                            value, text = parse(data), None  # its error
                        chunk = take(value)
                        if chunk is not None:
                            out.append((chunk, text if state.verbatim else None))
                            if not first:  # the first goes on before the rest is parsed
                                first = True
                                yield out
                                out = []
                except Exception:
                    if out:  # the events before the bad one go on, as they would alone
                        yield out
                    raise
                if out:
                    yield out
                if done:
                    await read_to_end(lines)
                    break
            else:
                last = parser.close()
                if last is not None:
                    if last.data.strip() == "[DONE]":
                        done = True
                    else:
                        chunk = take(parse(last.data))  # rare: encoded, not verbatim
                        if chunk is not None:
                            yield [(chunk, None)]
        if not (done or state.finished):
            raise ProviderError(
                f"{self.name} stream ended before the answer was complete",
                kind="connect",
                provider=self.name,
            )
        yield [(state.usage_chunk(request), None)]

    stream_chat_wire = _wire_batches

    def _event_json(self, data: str) -> dict[str, Any]:
        try:
            value = loads(data)
        except ValueError as exc:
            raise ProviderError(
                f"{self.name} sent an invalid stream event", kind="protocol", provider=self.name
            ) from exc
        if not isinstance(value, dict):
            raise ProviderError(f"{self.name} sent an invalid stream event", kind="protocol")
        if "error" in value and value["error"]:
            error = value["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ProviderError(
                f"{self.name} failed mid-stream: {message}", kind="protocol", provider=self.name
            )
        return value

    # -- the Responses API, passed through (deployments with ``responses_api: native``) --

    async def create_response(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        data = await self._post("/responses", {**body, "model": model, "stream": False})
        if not isinstance(data, dict) or data.get("object") != "response":
            raise ProviderError(f"{self.name} returned an unexpected body", kind="protocol")
        return data

    async def stream_response(
        self, model: str, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """The upstream's events, as sent, until its terminal event."""
        lines = self._client.lines(
            "/responses",
            headers={},
            body={**body, "model": model, "stream": True},
            params=self._params,
        )
        events = iter_sse(lines)
        async with aclosing(lines):
            async for event in events:
                value = self._event_json(event.data)
                if value.get("type") == "error":
                    message = value.get("message") or "stream error"
                    raise ProviderError(
                        f"{self.name} failed mid-stream: {message}", kind="protocol"
                    )
                yield value
                if value.get("type") in _TERMINAL:
                    await read_to_end(events)  # the connection stays reusable
                    return
        raise ProviderError(
            f"{self.name} stream ended before the response was complete",
            kind="connect",
            provider=self.name,
        )

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingResult:
        body: dict[str, Any] = {"model": model, "input": inputs, "encoding_format": "float"}
        if dimensions:
            body["dimensions"] = dimensions
        data = await self._post("/embeddings", body)
        try:
            items = sorted(data["data"], key=lambda item: item.get("index", 0))
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError(
                f"{self.name} returned an unexpected embeddings body", kind="protocol"
            ) from exc
        tokens = (data.get("usage") or {}).get("prompt_tokens")
        if tokens is None:
            tokens = sum(wire.estimate_tokens(t) for t in inputs)
        return EmbeddingResult(vectors, int(tokens))

    async def list_models(self) -> list[str]:
        data = await self._client.json("GET", "/models", headers={}, params=self._params)
        return [str(item["id"]) for item in data.get("data", []) if item.get("id")]

    async def probe(self) -> str:
        """``GET /models`` with the configured key."""
        return f"{len(await self.list_models())} models"

    async def aclose(self) -> None:
        await self._client.aclose()

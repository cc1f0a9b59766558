"""The provider protocol, provider errors and the lazy provider registry.

Requests and responses cross this boundary in the OpenAI wire format, as plain dicts:

* ``ChatRequest``: the body of ``POST /v1/chat/completions`` after validation, without
  ``model``/``stream``/``stream_options`` (the model is passed separately as the upstream
  model name; streaming is the choice of method).
* ``ChatCompletion``: a ``chat.completion`` object; ``usage`` is always filled.
* ``ChatChunk``: a ``chat.completion.chunk`` object; the last chunk of a stream carries
  ``usage`` (with ``choices: []``) whether or not the client asked for it, so accounting
  works for every stream. The API layer drops it when the client did not ask.

A provider module translates with pure functions (tested with recorded payloads) and does
HTTP I/O separately on the shared transport (:mod:`.upstream`). Retries, fallbacks and
cooldowns are not the provider's job: it raises :class:`ProviderError` describing what
happened and the shared layer decides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from ..registry import Registry

if TYPE_CHECKING:
    from ..config import ProviderSettings
    from ..secrets.base import SecretResolver

__all__ = [
    "PROVIDERS",
    "ChatChunk",
    "ChatCompletion",
    "ChatRequest",
    "EmbeddingResult",
    "ErrorKind",
    "Provider",
    "ProviderError",
    "ProviderFactory",
]

ChatRequest = dict[str, Any]
ChatCompletion = dict[str, Any]
ChatChunk = dict[str, Any]

ErrorKind = Literal["connect", "timeout", "http", "protocol", "auth"]


class EmbeddingResult(NamedTuple):
    vectors: list[list[float]]
    input_tokens: int


class ProviderError(Exception):
    """An upstream call failed. Never contains a credential.

    ``status`` is the upstream HTTP status (if any), ``retry_after`` the seconds the upstream
    asked us to wait, ``kind`` what went wrong at the transport level.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind = "http",
        status: int | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.provider = provider

    @property
    def retryable(self) -> bool:
        """Connect errors, timeouts, 408, 429 and 5xx; never other 4xx."""
        if self.kind in ("connect", "timeout"):
            return True
        return self.status is not None and (self.status in (408, 429) or self.status >= 500)

    @property
    def allows_fallback(self) -> bool:
        """Whether the next deployment of the model may be tried (never on a client error).

        An unreadable answer (``protocol``: not JSON, truncated, the wrong shape) is not
        retried on the same deployment, whose next answer is likely as broken, but the
        next deployment may well answer properly."""
        return self.retryable or self.kind in ("auth", "protocol")


class Provider(Protocol):
    """One configured upstream (``providers.<name>`` in the config)."""

    name: str

    async def chat(self, model: str, request: ChatRequest) -> ChatCompletion: ...

    def stream_chat(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]: ...

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingResult: ...

    async def list_models(self) -> list[str]: ...

    async def probe(self) -> str:
        """One cheap authenticated call (``aiservice check``): a short detail such as
        ``"12 models"``, or :class:`ProviderError` when the upstream or its key is unusable."""
        ...

    async def aclose(self) -> None: ...


ProviderFactory = Callable[[str, "ProviderSettings", "SecretResolver"], Provider]
"""``factory(name, config, secrets)``; provider classes are their own factories."""

PROVIDERS: Registry[ProviderFactory] = Registry("provider type", group="aiservice.providers")
PROVIDERS.register("fake", "aiservice.providers.fake:FakeProvider")
PROVIDERS.register("openai", "aiservice.providers.openai:OpenAIProvider")
PROVIDERS.register("ollama", "aiservice.providers.ollama:OllamaProvider")
PROVIDERS.register("anthropic", "aiservice.providers.anthropic:AnthropicProvider")
PROVIDERS.register("gemini", "aiservice.providers.gemini:GeminiProvider")
PROVIDERS.register(
    "bedrock", "aiservice.providers.bedrock:BedrockProvider", "pip install 'aiservice[aws]'"
)

"""The LLM gateway: one object that turns a public model name into upstream calls, with
retries, fallback, per-deployment cooldowns, metrics and cost accounting.

The HTTP endpoints stay thin (validate, call one method, format); everything a call goes
through lives here, so features that wrap the upstream call have clear seams:

* :meth:`Gateway.resolve` ``(model) -> list[Deployment]`` — the ordered deployments of a
  public name (``models:``) or of a direct ``provider/model`` name; raises
  :class:`~aiservice.errors.ModelNotFoundError` (404). Cheap and without I/O: call it
  first to validate the model before a cache lookup, a rate-limit check or a budget check.
* :meth:`Gateway.chat` ``(model, request, principal) -> ChatResult`` — the upstream call
  (retries per deployment, then fallback to the next). ``request`` is the OpenAI body
  without ``model``/``stream``/``stream_options``. Usage is accounted before it returns.
  A response cache wraps this call: on a hit, skip it (no upstream usage to account).
* :meth:`Gateway.stream` ``(model, request, principal) -> StreamResult`` — returns once
  the first chunk is in hand (fallback applies until then, so failures before it are
  ordinary errors with an HTTP status). ``StreamResult.chunks`` yields ``chat.completion.
  chunk`` dicts ending with the usage chunk (``choices: []``), and raises an
  :class:`~aiservice.errors.AIServiceError` if the upstream fails midway (no fallback
  after the first chunk). Usage is accounted when the stream ends. Stream recording for
  replay can tee ``chunks``.
* :meth:`Gateway.embed` ``(model, inputs, dimensions=, principal=) -> EmbedResult`` —
  batched (``embeddings.batch_size``) and run ``embeddings.concurrency`` batches at a
  time; each batch has its own retries and fallback.
* ``Gateway.accountant.listeners`` — async callbacks receiving a
  :class:`~aiservice.llm.accounting.UsageRecord` (tokens, cost, principal) for every
  finished upstream call: the single place where usage and cost are reported, for budgets
  and per-key token limits.

Errors: providers raise :class:`~aiservice.providers.base.ProviderError`; what no retry or
fallback fixed leaves as the client error chosen by :func:`aiservice.llm.errors.client_error`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import InvalidRequestError, ServiceUnavailableError, UpstreamError
from ..observability.metrics import labelled
from ..providers.base import ChatChunk, ChatCompletion, ChatRequest, ProviderError
from .accounting import (
    LLM_COOLDOWNS,
    LLM_COOLED,
    LLM_DURATION,
    LLM_FALLBACKS,
    LLM_REQUESTS,
    LLM_TTFT,
    Accountant,
)
from .deployments import Deployment, ModelTable
from .errors import client_error
from .reliability import Cooldowns, RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from ..config import EmbeddingsSettings, PriceSettings
    from ..security.apikeys import Principal

__all__ = ["ChatResult", "EmbedResult", "Gateway", "StreamResult"]

log = logging.getLogger("aiservice.llm")
T = TypeVar("T")

# Cached labelled children: these run on every upstream call.
_requests = labelled(LLM_REQUESTS)
_duration = labelled(LLM_DURATION)
_ttft = labelled(LLM_TTFT)


@dataclass(frozen=True, slots=True)
class ChatResult:
    completion: ChatCompletion
    deployment: Deployment


@dataclass(frozen=True, slots=True)
class StreamResult:
    deployment: Deployment
    chunks: AsyncIterator[ChatChunk]


@dataclass(frozen=True, slots=True)
class EmbedResult:
    vectors: list[list[float]]
    input_tokens: int
    deployment: Deployment


def _status(exc: ProviderError) -> str:
    return str(exc.status) if exc.status is not None else exc.kind


class Gateway:
    def __init__(
        self,
        table: ModelTable,
        *,
        pricing: Mapping[str, PriceSettings] | None = None,
        embeddings: EmbeddingsSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from ..config import EmbeddingsSettings

        self.table = table
        self.accountant = Accountant(pricing or {})
        self.embeddings = embeddings or EmbeddingsSettings()
        self.cooldowns = Cooldowns(clock)
        self._clock = clock

    # -- resolution -------------------------------------------------------------------

    def resolve(self, model: str) -> list[Deployment]:
        return self.table.resolve(model)

    def models(self) -> list[str]:
        return self.table.public_names

    # -- per-attempt bookkeeping --------------------------------------------------------

    def _failed(self, d: Deployment, exc: ProviderError) -> None:
        _requests(d.provider_name, d.model, _status(exc)).inc()
        if not exc.allows_fallback:
            return  # the request was bad, not the deployment
        tripped = self.cooldowns.failure(
            d.key, threshold=d.config.failure_threshold, cooldown=d.config.cooldown_seconds
        )
        if tripped:
            LLM_COOLDOWNS.labels(d.provider_name, d.model).inc()
            cooldowns, key = self.cooldowns, d.key
            LLM_COOLED.labels(d.provider_name, d.model).set_function(
                lambda: 0.0 if cooldowns.available(key) else 1.0
            )
            log.warning(
                "deployment %s cooled down for %gs after repeated failures: %s",
                d.key,
                d.config.cooldown_seconds,
                exc.message,
            )

    def _succeeded(self, d: Deployment, started: float) -> None:
        _requests(d.provider_name, d.model, "ok").inc()
        _duration(d.provider_name, d.model).observe(self._clock() - started)
        self.cooldowns.success(d.key)

    def _policy(self, d: Deployment, max_retries: int | None = None) -> RetryPolicy:
        retries = d.config.max_retries if max_retries is None else max_retries
        return RetryPolicy(max_retries=retries, backoff=d.config.retry_backoff)

    async def _attempts(
        self,
        d: Deployment,
        call: Callable[[Deployment], Awaitable[T]],
        *,
        max_retries: int | None = None,
        record_success: bool = True,
    ) -> T:
        async def attempt() -> T:
            started = self._clock()
            try:
                result = await call(d)
            except ProviderError as exc:
                exc.provider = exc.provider or d.provider_name
                self._failed(d, exc)
                raise
            if record_success:
                self._succeeded(d, started)
            return result

        return await call_with_retries(self._policy(d, max_retries), attempt)

    async def _with_fallback(
        self,
        model: str,
        call: Callable[[Deployment], Awaitable[T]],
        **kwargs: Any,
    ) -> tuple[T, Deployment]:
        """Try each available deployment in order; fall back on errors that allow it."""
        deployments = self.resolve(model)
        candidates = [d for d in deployments if self.cooldowns.available(d.key)]
        if not candidates:
            wait = min(self.cooldowns.remaining(d.key) for d in deployments)
            raise ServiceUnavailableError(
                f"every deployment of {model!r} is cooling down after repeated upstream "
                f"failures; retry in {wait:.0f}s",
                code="deployments_cooling_down",
                headers={"retry-after": str(max(1, round(wait)))},
            )
        for index, d in enumerate(candidates):
            try:
                return await self._attempts(d, call, **kwargs), d
            except ProviderError as exc:
                last = index == len(candidates) - 1
                if last or not exc.allows_fallback:
                    raise client_error(exc, d.provider_name) from exc
                LLM_FALLBACKS.labels(model, d.provider_name).inc()
                log.warning(
                    "model %s: %s failed (%s), falling back to %s",
                    model,
                    d.key,
                    exc.message,
                    candidates[index + 1].key,
                )
        raise AssertionError("unreachable: the loop returns or raises")

    # -- chat ---------------------------------------------------------------------------

    async def chat(
        self, model: str, request: ChatRequest, principal: Principal | None
    ) -> ChatResult:
        async def call(d: Deployment) -> ChatCompletion:
            return await d.provider.chat(d.model, request)

        completion, d = await self._with_fallback(model, call)
        await self.accountant.report(
            "chat", model, d.provider_name, d.model, completion.get("usage"), principal
        )
        return ChatResult(completion, d)

    async def stream(
        self, model: str, request: ChatRequest, principal: Principal | None
    ) -> StreamResult:
        started = self._clock()

        async def open_stream(d: Deployment) -> tuple[AsyncIterator[ChatChunk], ChatChunk]:
            iterator = aiter(d.provider.stream_chat(d.model, request))
            try:
                first = await anext(iterator)
            except StopAsyncIteration as exc:
                raise ProviderError(
                    f"{d.provider_name} sent an empty stream", kind="protocol"
                ) from exc
            return iterator, first

        (iterator, first), d = await self._with_fallback(model, open_stream, record_success=False)
        _ttft(d.provider_name, d.model).observe(self._clock() - started)
        return StreamResult(d, self._relay(model, d, iterator, first, principal, started))

    async def _relay(
        self,
        model: str,
        d: Deployment,
        iterator: AsyncIterator[ChatChunk],
        first: ChatChunk,
        principal: Principal | None,
        started: float,
    ) -> AsyncIterator[ChatChunk]:
        usage: dict[str, int] | None = None
        try:
            chunk: ChatChunk | None = first
            while chunk is not None:
                if not chunk.get("choices") and chunk.get("usage"):
                    usage = chunk["usage"]
                yield chunk
                chunk = await anext(iterator, None)
        except ProviderError as exc:
            exc.provider = exc.provider or d.provider_name
            self._failed(d, exc)
            raise client_error(exc, d.provider_name) from exc
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()
        self._succeeded(d, started)
        await self.accountant.report("chat", model, d.provider_name, d.model, usage, principal)

    # -- embeddings ---------------------------------------------------------------------

    async def embed(
        self,
        model: str,
        inputs: list[str],
        *,
        dimensions: int | None = None,
        principal: Principal | None = None,
    ) -> EmbedResult:
        self.resolve(model)  # a 404 before any work
        if not inputs:
            raise InvalidRequestError("input must not be empty", param="input")
        size = self.embeddings.batch_size
        batches = [inputs[i : i + size] for i in range(0, len(inputs), size)]
        gate = asyncio.Semaphore(self.embeddings.concurrency)

        async def one(batch: list[str]) -> EmbedResult:
            async def call(d: Deployment) -> Any:
                return await d.provider.embed(d.model, batch, dimensions=dimensions)

            async with gate:
                result, d = await self._with_fallback(
                    model, call, max_retries=self.embeddings.max_retries
                )
            usage = {"prompt_tokens": result.input_tokens, "completion_tokens": 0}
            await self.accountant.report(
                "embeddings", model, d.provider_name, d.model, usage, principal
            )
            return EmbedResult(result.vectors, result.input_tokens, d)

        results = await asyncio.gather(*(one(b) for b in batches))
        vectors = [v for r in results for v in r.vectors]
        if len(vectors) != len(inputs):
            raise UpstreamError(
                f"the embedding model returned {len(vectors)} vectors for {len(inputs)} inputs"
            )
        return EmbedResult(vectors, sum(r.input_tokens for r in results), results[0].deployment)

    # -- lifecycle and health ----------------------------------------------------------

    async def health(self) -> str:
        """Readiness detail; raises while any deployment is cooled down."""
        cooled = self.cooldowns.cooled()
        if cooled:
            listed = ", ".join(f"{k} ({s:.0f}s left)" for k, s in sorted(cooled.items()))
            raise RuntimeError(f"cooled down: {listed}")
        return f"{len(self.table.providers)} providers, {len(self.models())} models"

    async def aclose(self) -> None:
        for provider in self.table.providers.values():
            try:
                await provider.aclose()
            except Exception:  # closing must go on for the others
                log.exception("closing provider %s failed", provider.name)

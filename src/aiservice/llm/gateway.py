"""The LLM gateway: one object that turns a public model name into upstream calls, with
request bounds, retries, fallback, per-deployment circuit breakers, a deadline, metrics
and cost accounting.

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
  chunk`` dicts ending with the usage chunk (``choices: []``); for a provider with
  ``stream_chat_wire`` (the OpenAI wire) ``StreamResult.batches`` yields the same chunks in
  one list per network read, to a consumer that iterates it instead. Either raises an
  :class:`~aiservice.errors.AIServiceError` if the upstream fails midway (no fallback
  after the first chunk). Usage is accounted when the stream ends. Stream recording for
  replay can tee ``chunks``. Each chunk is a :class:`~aiservice.llm.encode.StreamChunk`:
  checked by serialising it, and carrying that JSON (with ``model`` the public name) for
  the SSE framing to reuse.
* :meth:`Gateway.embed` ``(model, inputs, dimensions=, principal=) -> EmbedResult`` —
  batched (``embeddings.batch_size``) and run ``embeddings.concurrency`` batches at a
  time; each batch has its own retries and fallback.
* ``Gateway.accountant.listeners`` — async callbacks receiving a
  :class:`~aiservice.llm.accounting.UsageRecord` (tokens, cost, principal) for every
  finished upstream call: the single place where usage and cost are reported, for budgets
  and per-key token limits.

Every call is first checked against ``limits.requests`` (400 naming the field; the API
calls :meth:`Gateway.check_chat` / :meth:`Gateway.check_embeddings` itself before the
cache), then runs through :class:`~aiservice.llm.fallback.Fallback`: per-deployment
retries, the circuit breaker (:class:`~aiservice.llm.reliability.Cooldowns`), fallback,
all within ``limits.requests.deadline_seconds`` (504 past it). See docs/gateway-limits.md.

Errors: providers raise :class:`~aiservice.providers.base.ProviderError`; what no retry or
fallback fixed leaves as the client error chosen by :func:`aiservice.llm.errors.client_error`.
An answer a provider could not translate (any other exception) or that cannot be sent
(a lone surrogate, a non-finite number) is a ``protocol`` error of that upstream: 502,
fallback allowed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ..errors import InvalidRequestError, UpstreamError
from ..observability.metrics import labelled
from ..providers.base import (
    ChatCompletion,
    ChatRequest,
    EmbeddingResult,
    ProviderError,
)
from .accounting import LLM_TTFT, Accountant
from .deployments import Deployment, ModelTable
from .encode import ChunkEncoder
from .fallback import Fallback, close_iterator, encoding_problem
from .limits import check_chat, check_embeddings
from .relay import (
    Opened,
    StreamEnd,
    StreamResult,
    WireBatch,
    each,
    encoded,
    relay_batches,
    relay_chunks,
    verbatim,
)
from .reliability import Cooldowns

if TYPE_CHECKING:
    from ..config import EmbeddingsSettings, PriceSettings
    from ..config.sections import RequestLimits
    from ..security.apikeys import Principal

__all__ = ["ChatResult", "EmbedResult", "Gateway", "StreamResult"]

log = logging.getLogger("aiservice.llm")
T = TypeVar("T")
_ttft = labelled(LLM_TTFT)


class ChatResult(NamedTuple):
    completion: ChatCompletion
    deployment: Deployment


class EmbedResult(NamedTuple):
    vectors: list[list[float]]
    input_tokens: int
    deployment: Deployment


class Gateway:
    def __init__(
        self,
        table: ModelTable,
        *,
        pricing: Mapping[str, PriceSettings] | None = None,
        embeddings: EmbeddingsSettings | None = None,
        limits: RequestLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from ..config import EmbeddingsSettings
        from ..config.sections import RequestLimits

        self.table = table
        self.accountant = Accountant(pricing or {})
        self.embeddings = embeddings or EmbeddingsSettings()
        self.limits = limits or RequestLimits()
        self.cooldowns = Cooldowns(clock)
        self._clock = clock
        self._fallback = Fallback(table, self.cooldowns, self.limits, clock)

    # -- resolution and request checks -------------------------------------------------

    def resolve(self, model: str) -> list[Deployment]:
        return self.table.resolve(model)

    def models(self) -> list[str]:
        return self.table.public_names

    def check_chat(self, request: ChatRequest, *, text_checked: bool = False) -> None:
        """400 for a chat request over ``limits.requests`` or with unencodable text; the
        chat methods call it too, the API calls it first so a cache hit obeys it as well.
        ``text_checked``: see :func:`~aiservice.llm.limits.check_chat`."""
        check_chat(request, self.limits, text_checked=text_checked)

    def check_embeddings(self, inputs: list[str], dimensions: int | None) -> None:
        check_embeddings(inputs, dimensions, self.limits)

    def deadline(self) -> float:
        """The ``loop.time()`` by which a request starting now must be answered."""
        return asyncio.get_running_loop().time() + self.limits.deadline_seconds

    # -- chat ---------------------------------------------------------------------------

    async def chat(
        self,
        model: str,
        request: ChatRequest,
        principal: Principal | None,
        *,
        deployments: Sequence[Deployment] | None = None,
        checked: bool = False,
    ) -> ChatResult:
        """``deployments``: what :meth:`resolve` returned for ``model`` (resolved once per
        request by a caller that needed it already); ``checked``: :meth:`check_chat` ran."""
        if not checked:
            self.check_chat(request)

        async def call(d: Deployment) -> ChatCompletion:
            return await d.provider.chat(d.model, request)

        completion, d, _ = await self._fallback.run(
            model, call, deadline=self.deadline(), check=encoding_problem, deployments=deployments
        )
        await self.accountant.report(
            "chat", model, d.provider_name, d.model, completion.get("usage"), principal
        )
        return ChatResult(completion, d)

    async def run(
        self, model: str, call: Callable[[Deployment], Awaitable[T]]
    ) -> tuple[T, Deployment]:
        """``call(deployment)`` through what :meth:`chat` goes through (retries, breakers,
        fallback, the deadline), for upstream APIs other than chat (the Responses API
        pass-through). Accounting is the caller's: :attr:`accountant`."""
        result, d, _ = await self._fallback.run(model, call, deadline=self.deadline())
        return result, d

    async def stream(
        self,
        model: str,
        request: ChatRequest,
        principal: Principal | None,
        *,
        deployments: Sequence[Deployment] | None = None,
        checked: bool = False,
    ) -> StreamResult:
        """``deployments`` and ``checked``: as for :meth:`chat`."""
        if not checked:
            self.check_chat(request)
        started = self._clock()
        encode = ChunkEncoder(model)  # one per stream: its chunks share all but choices

        async def open_stream(d: Deployment) -> Opened:
            source = getattr(d.provider, "stream_chat_wire", None)
            iterator: AsyncIterator[Any]
            if source is None:
                iterator = aiter(d.provider.stream_chat(d.model, request))
            else:  # the OpenAI wire: chunks in batches, with their upstream text
                iterator = aiter(source(d.model, request))
            try:
                if source is None:
                    return Opened((iterator, None), encoded(await anext(iterator), encode, d))
                batch: WireBatch = await anext(iterator)
                return Opened((iterator, batch[1:]), verbatim(batch[0], encode, d))
            except StopAsyncIteration as exc:
                raise ProviderError(
                    f"{d.provider_name} sent an empty stream", kind="protocol"
                ) from exc
            except BaseException:
                await close_iterator(iterator)  # frees the upstream connection now
                raise

        # The deadline covers reaching the first chunk; after it, the provider's read
        # timeout bounds every wait for the next one (and stream_idle_seconds, if set).
        opened, d, ticket = await self._fallback.run(
            model,
            open_stream,
            deadline=self.deadline(),
            deployments=deployments,
            record_success=False,
        )
        _ttft(d.provider_name, d.model).observe(self._clock() - started)
        (iterator, rest), first = opened
        end = StreamEnd(self._fallback, self.accountant, model, d, ticket, principal, started)
        idle = self.limits.stream_idle_seconds
        if rest is None:
            return StreamResult(d, relay_chunks(end, request, iterator, first, encode, idle))
        batches = relay_batches(end, request, iterator, first, rest, encode, idle)
        return StreamResult(d, each(batches), batches)

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
        self.check_embeddings(inputs, dimensions)
        size = self.embeddings.batch_size
        batches = [inputs[i : i + size] for i in range(0, len(inputs), size)]
        gate = asyncio.Semaphore(self.embeddings.concurrency)
        deadline = self.deadline()

        async def one(batch: list[str]) -> EmbedResult:
            async def call(d: Deployment) -> Any:
                return await d.provider.embed(d.model, batch, dimensions=dimensions)

            def counted(result: EmbeddingResult) -> str | None:
                got = len(result.vectors)
                return None if got == len(batch) else f"{got} vectors for {len(batch)} inputs"

            async with gate:
                result, d, _ = await self._fallback.run(
                    model,
                    call,
                    deadline=deadline,
                    check=counted,
                    max_retries=self.embeddings.max_retries,
                    operation="embeddings",
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

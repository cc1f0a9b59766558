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

from ..errors import (
    AIServiceError,
    InvalidRequestError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from ..observability.metrics import labelled
from ..providers.base import (
    ChatChunk,
    ChatCompletion,
    ChatRequest,
    EmbeddingResult,
    ProviderError,
)
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
from .limits import check_chat, check_embeddings, is_encodable
from .reliability import Cooldowns, RetryPolicy, Ticket, call_with_retries

if TYPE_CHECKING:
    from ..config import EmbeddingsSettings, PriceSettings
    from ..config.sections import RequestLimits
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


def unusable_answer(d: Deployment, exc: Exception) -> ProviderError:
    """A provider raised something other than :class:`ProviderError`: an answer its
    translation could not handle (a missing field, a wrong type). The upstream is at fault
    as far as the client can tell (502, fallback allowed); the trace goes to the log."""
    log.error("%s: unusable upstream answer", d.key, exc_info=exc)
    return ProviderError(
        f"{d.provider_name} returned an answer that could not be read ({type(exc).__name__})",
        kind="protocol",
        provider=d.provider_name,
    )


def encoding_problem(value: Any) -> str | None:
    if is_encodable(value):
        return None
    return "answered with text that is not valid Unicode (a lone surrogate) or a bad number"


async def _close(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


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

    # -- resolution and request checks -------------------------------------------------

    def resolve(self, model: str) -> list[Deployment]:
        return self.table.resolve(model)

    def models(self) -> list[str]:
        return self.table.public_names

    def check_chat(self, request: ChatRequest) -> None:
        """400 for a chat request over ``limits.requests`` or with unencodable text; the
        chat methods call it too, the API calls it first so a cache hit obeys it as well."""
        check_chat(request, self.limits)

    def check_embeddings(self, inputs: list[str], dimensions: int | None) -> None:
        check_embeddings(inputs, dimensions, self.limits)

    def deadline(self) -> float:
        """The ``loop.time()`` by which a request starting now must be answered."""
        return asyncio.get_running_loop().time() + self.limits.deadline_seconds

    # -- per-attempt bookkeeping --------------------------------------------------------

    def _failed(self, d: Deployment, ticket: Ticket, exc: ProviderError) -> None:
        _requests(d.provider_name, d.model, _status(exc)).inc()
        if not exc.allows_fallback:
            return  # the request was bad, not the deployment
        tripped = self.cooldowns.failure(
            ticket, threshold=d.config.failure_threshold, cooldown=d.config.cooldown_seconds
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

    def _policy(self, d: Deployment, max_retries: int | None = None) -> RetryPolicy:
        retries = d.config.max_retries if max_retries is None else max_retries
        return RetryPolicy(max_retries=retries, backoff=d.config.retry_backoff)

    async def _attempts(
        self,
        d: Deployment,
        ticket: Ticket,
        call: Callable[[Deployment], Awaitable[T]],
        *,
        deadline: float,
        check: Callable[[T], str | None] | None,
        max_retries: int | None = None,
        record_success: bool = True,
    ) -> T:
        async def attempt() -> T:
            started = self._clock()
            try:
                result = await call(d)
                problem = check(result) if check is not None else None
                if problem is not None:
                    raise ProviderError(f"{d.provider_name} {problem}", kind="protocol")
            except ProviderError as exc:
                exc.provider = exc.provider or d.provider_name
                self._failed(d, ticket, exc)
                raise
            except AIServiceError:
                raise  # the provider judged the request itself (a 4xx with a param)
            except Exception as exc:
                error = unusable_answer(d, exc)
                self._failed(d, ticket, error)
                raise error from exc
            self.cooldowns.success(ticket)
            if record_success:
                self._succeeded(d, started)
            return result

        return await call_with_retries(
            self._policy(d, max_retries),
            attempt,
            give_up=lambda: not self.cooldowns.current(ticket),
            deadline=deadline,
        )

    async def _with_fallback(
        self,
        model: str,
        call: Callable[[Deployment], Awaitable[T]],
        *,
        deadline: float,
        check: Callable[[T], str | None] | None = None,
        **kwargs: Any,
    ) -> tuple[T, Deployment, Ticket]:
        """Try each deployment in order (skipping open breakers), falling back on errors
        that allow it, all within ``deadline`` (``loop.time()``; 504 past it)."""
        deployments = self.resolve(model)
        try:
            async with asyncio.timeout_at(deadline):
                return await self._try_in_order(model, deployments, call, deadline, check, kwargs)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"model {model!r} did not answer within the request deadline of "
                f"{self.limits.deadline_seconds:g}s (limits.requests.deadline_seconds)",
                code="deadline_exceeded",
            ) from exc

    async def _try_in_order(
        self,
        model: str,
        deployments: list[Deployment],
        call: Callable[[Deployment], Awaitable[T]],
        deadline: float,
        check: Callable[[T], str | None] | None,
        kwargs: dict[str, Any],
    ) -> tuple[T, Deployment, Ticket]:
        last: tuple[ProviderError, Deployment] | None = None
        for index, d in enumerate(deployments):
            ticket = self.cooldowns.acquire(d.key)
            if ticket is None:
                continue
            try:
                result = await self._attempts(
                    d, ticket, call, deadline=deadline, check=check, **kwargs
                )
                return result, d, ticket
            except ProviderError as exc:
                if not exc.allows_fallback:
                    raise client_error(exc, d.provider_name) from exc
                last = (exc, d)
                if index < len(deployments) - 1:
                    LLM_FALLBACKS.labels(model, d.provider_name).inc()
                    log.warning("model %s: %s failed (%s), falling back", model, d.key, exc.message)
            finally:
                self.cooldowns.release(ticket)
        if last is not None:
            raise client_error(last[0], last[1].provider_name) from last[0]
        wait = min(self.cooldowns.remaining(d.key) for d in deployments)
        raise ServiceUnavailableError(
            f"every deployment of {model!r} is cooling down after repeated upstream "
            f"failures; retry in {wait:.0f}s",
            code="deployments_cooling_down",
            headers={"retry-after": str(max(1, round(wait)))},
        )

    # -- chat ---------------------------------------------------------------------------

    async def chat(
        self, model: str, request: ChatRequest, principal: Principal | None
    ) -> ChatResult:
        self.check_chat(request)

        async def call(d: Deployment) -> ChatCompletion:
            return await d.provider.chat(d.model, request)

        completion, d, _ = await self._with_fallback(
            model, call, deadline=self.deadline(), check=encoding_problem
        )
        await self.accountant.report(
            "chat", model, d.provider_name, d.model, completion.get("usage"), principal
        )
        return ChatResult(completion, d)

    async def stream(
        self, model: str, request: ChatRequest, principal: Principal | None
    ) -> StreamResult:
        self.check_chat(request)
        started = self._clock()

        async def open_stream(d: Deployment) -> tuple[AsyncIterator[ChatChunk], ChatChunk]:
            iterator = aiter(d.provider.stream_chat(d.model, request))
            try:
                first = await anext(iterator)
            except StopAsyncIteration as exc:
                raise ProviderError(
                    f"{d.provider_name} sent an empty stream", kind="protocol"
                ) from exc
            except BaseException:
                await _close(iterator)
                raise
            return iterator, first

        def first_ok(opened: tuple[AsyncIterator[ChatChunk], ChatChunk]) -> str | None:
            return encoding_problem(opened[1])

        # The deadline covers reaching the first chunk; after it, the provider's read
        # timeout bounds every wait for the next one.
        (iterator, first), d, ticket = await self._with_fallback(
            model, open_stream, deadline=self.deadline(), check=first_ok, record_success=False
        )
        _ttft(d.provider_name, d.model).observe(self._clock() - started)
        relay = self._relay(model, d, ticket, iterator, first, principal, started)
        return StreamResult(d, relay)

    async def _relay(
        self,
        model: str,
        d: Deployment,
        ticket: Ticket,
        iterator: AsyncIterator[ChatChunk],
        first: ChatChunk,
        principal: Principal | None,
        started: float,
    ) -> AsyncIterator[ChatChunk]:
        """The chunks after the first; any failure leaves as an :class:`AIServiceError`."""
        usage: dict[str, int] | None = None
        try:
            chunk: ChatChunk | None = first
            while chunk is not None:
                if not chunk.get("choices") and chunk.get("usage"):
                    usage = chunk["usage"]
                yield chunk
                chunk = await anext(iterator, None)
                problem = encoding_problem(chunk) if chunk is not None else None
                if problem is not None:
                    raise ProviderError(f"{d.provider_name} {problem}", kind="protocol")
        except ProviderError as exc:
            exc.provider = exc.provider or d.provider_name
            self._failed(d, ticket, exc)
            raise client_error(exc, d.provider_name) from exc
        except AIServiceError:
            raise
        except Exception as exc:
            error = unusable_answer(d, exc)
            self._failed(d, ticket, error)
            raise client_error(error, d.provider_name) from exc
        finally:
            await _close(iterator)
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
                result, d, _ = await self._with_fallback(
                    model,
                    call,
                    deadline=deadline,
                    check=counted,
                    max_retries=self.embeddings.max_retries,
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

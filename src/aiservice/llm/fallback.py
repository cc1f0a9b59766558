"""Calling deployments: attempts with retries, the circuit breaker, fallback in order,
all within the request deadline.

:meth:`Fallback.run` is the one loop every gateway call goes through: for each deployment
of the model (skipping those whose breaker is open), attempts with retries
(:func:`~aiservice.llm.reliability.call_with_retries`), an optional check of the answer,
then the next deployment if the error allows it. Whatever no retry or fallback fixed
leaves as the client error of :func:`~aiservice.llm.errors.client_error`; a deadline
passed is 504 ``deadline_exceeded``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import AIServiceError, ServiceUnavailableError, UpstreamTimeoutError
from ..observability import tracing
from ..observability.metrics import labelled
from ..providers.base import ProviderError
from .accounting import LLM_COOLDOWNS, LLM_COOLED, LLM_DURATION, LLM_FALLBACKS, LLM_REQUESTS
from .deployments import Deployment, ModelTable
from .errors import client_error
from .limits import is_encodable
from .reliability import Cooldowns, RetryPolicy, Ticket, call_with_retries

if TYPE_CHECKING:
    from ..config.sections import RequestLimits

__all__ = ["Fallback", "close_iterator", "encoding_problem", "unusable_answer"]

log = logging.getLogger("aiservice.llm")
T = TypeVar("T")

# Cached labelled children: these run on every upstream call.
_requests = labelled(LLM_REQUESTS)
_duration = labelled(LLM_DURATION)


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


async def close_iterator(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


class Fallback:
    def __init__(
        self,
        table: ModelTable,
        cooldowns: Cooldowns,
        limits: RequestLimits,
        clock: Callable[[], float],
    ) -> None:
        self.table, self.cooldowns, self.limits, self._clock = table, cooldowns, limits, clock

    def failed(self, d: Deployment, ticket: Ticket, exc: ProviderError) -> None:
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

    def succeeded(self, d: Deployment, started: float) -> None:
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
        operation: str = "chat",
    ) -> T:
        attempts = 0

        async def attempt() -> T:
            nonlocal attempts
            attempts += 1
            started = self._clock()
            try:
                with tracing.llm_span(operation, d.config.type, d.provider_name, d.model) as span:
                    span.set("aiservice.attempt", attempts)
                    result = await call(d)
                    span.llm_result(result)
                    problem = check(result) if check is not None else None
                    if problem is not None:
                        raise ProviderError(f"{d.provider_name} {problem}", kind="protocol")
            except ProviderError as exc:
                exc.provider = exc.provider or d.provider_name
                self.failed(d, ticket, exc)
                raise
            except AIServiceError:
                raise  # the provider judged the request itself (a 4xx with a param)
            except Exception as exc:
                error = unusable_answer(d, exc)
                self.failed(d, ticket, error)
                raise error from exc
            self.cooldowns.success(ticket)
            if record_success:
                self.succeeded(d, started)
            return result

        return await call_with_retries(
            self._policy(d, max_retries),
            attempt,
            give_up=lambda: not self.cooldowns.current(ticket),
            deadline=deadline,
        )

    async def run(
        self,
        model: str,
        call: Callable[[Deployment], Awaitable[T]],
        *,
        deadline: float,
        check: Callable[[T], str | None] | None = None,
        deployments: Sequence[Deployment] | None = None,
        **kwargs: Any,
    ) -> tuple[T, Deployment, Ticket]:
        """Try each deployment in order (skipping open breakers), falling back on errors
        that allow it, all within ``deadline`` (``loop.time()``; 504 past it).
        ``deployments``: ``model`` already resolved by the caller."""
        if deployments is None:
            deployments = self.table.resolve(model)
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
        deployments: Sequence[Deployment],
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

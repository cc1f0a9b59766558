"""Rate limits and daily budgets per API key and global, on the shared state backend.

Per minute (fixed windows keyed by the minute, so every replica counts in the same
bucket): requests (charged on admission) and tokens (checked on admission, charged when the
upstream call reports its usage). Per UTC day: spend in USD from the pricing table
(micro-dollars, checked on admission, charged with the usage). Admission of all counters
— key and global — is one atomic :meth:`~aiservice.cache.base.StateBackend.consume` call
(one Lua script round trip on Redis); the chat route runs it in the round trip of the
response-cache lookup (:mod:`aiservice.cache.batch`), and usage charges ride along with the
cache store.
The FastAPI dependency that admits each request is :mod:`aiservice.api.ratelimit`.

Limits come from ``limits`` (per key), ``limits.global`` (all keys together) and
``auth.keys.<name>.limits`` (per-key override, field by field). When the backend fails,
``limits.on_backend_error`` decides: ``allow`` (default) or ``deny`` (503).

Answers served from the response cache or a coalesced call do not reach the upstream, so
they charge requests but not tokens or budget.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

from ..errors import RateLimitError, ServiceUnavailableError
from ..observability.metrics import counter
from ..security.apikeys import ANONYMOUS
from .base import Consume

if TYPE_CHECKING:
    from ..config import RateLimitValues, Settings
    from ..llm.accounting import UsageRecord
    from ..security.apikeys import Principal
    from .base import ConsumeResult, StateBackend

__all__ = ["Admission", "PendingAdmission", "RateLimiter", "deferred_charges"]

log = logging.getLogger("aiservice.security")

REJECTIONS = counter(
    "aiservice_ratelimit_rejections_total",
    "Requests rejected by a rate limit or budget, by scope (key|global) and limit.",
    ("scope", "limit"),
)
BACKEND_ERRORS = counter(
    "aiservice_ratelimit_backend_errors_total",
    "Rate-limit checks that could not reach the backend, by the policy applied.",
    ("policy",),
)

MINUTE = 60.0
DAY = 86_400.0
MICRO = 1_000_000  # budgets are counted in micro-dollars (integers, atomic increments)
WARN_INTERVAL = 60.0  # seconds between two "backend unavailable" warnings


class _Counter(NamedTuple):
    """One limited (or merely counted) quantity of one scope."""

    scope: str  # "key" | "global"
    limit_name: str  # "requests" | "tokens" | "budget"
    key: str
    limit: int | None
    ttl: float
    reset_at: float  # epoch seconds when the window ends


class Admission(NamedTuple):
    """An admitted request: the headers to send (``x-ratelimit-*``)."""

    headers: dict[str, str]


_NO_LIMITS = Admission({})


def _limited(values: RateLimitValues | None) -> bool:
    """Whether ``values`` sets any limit (an unset field limits nothing)."""
    return values is not None and bool(
        values.requests_per_minute or values.tokens_per_minute or values.budget_usd_per_day
    )


def _merge(base: RateLimitValues, override: RateLimitValues | None) -> RateLimitValues:
    if override is None:
        return base
    changed = {k: v for k, v in override.model_dump().items() if v is not None}
    return base.model_copy(update=changed)


class RateLimiter:
    def __init__(
        self,
        backend: StateBackend,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.limits = settings.limits
        self._clock = clock
        # Nothing configured service-wide: only a key's own limits can count anything, so
        # requests of keys without limits skip the counters (and the backend) entirely.
        self._service_limited = _limited(self.limits) or _limited(self.limits.global_)
        self._last_warning: float | None = None

    def applies_to(self, principal: Principal) -> bool:
        """Whether any limit or budget counts the requests of ``principal``."""
        return self._service_limited or _limited(principal.limits)

    # -- counters --------------------------------------------------------------------------

    def _scopes(self, principal: Principal) -> list[tuple[str, str, RateLimitValues]]:
        per_key = _merge(self.limits, principal.limits)
        return [
            ("key", f"key:{principal.name}", per_key),
            ("global", "global", self.limits.global_),
        ]

    def _counters(self, principal: Principal, *, charge_only: bool = False) -> list[_Counter]:
        now = self._clock()
        minute, day = int(now // MINUTE), int(now // DAY)
        minute_end, day_end = (minute + 1) * MINUTE, (day + 1) * DAY
        out = []
        for scope, ident, values in self._scopes(principal):
            rpm, tpm = values.requests_per_minute, values.tokens_per_minute
            budget = values.budget_usd_per_day
            if rpm and not charge_only:
                out.append(
                    _Counter(
                        scope, "requests", f"rl:{ident}:rpm:{minute}", rpm, 2 * MINUTE, minute_end
                    )
                )
            if tpm:
                out.append(
                    _Counter(
                        scope, "tokens", f"rl:{ident}:tpm:{minute}", tpm, 2 * MINUTE, minute_end
                    )
                )
            if budget:
                limit = math.floor(budget * MICRO)
                out.append(
                    _Counter(scope, "budget", f"rl:{ident}:usd:{day}", limit, 2 * DAY, day_end)
                )
        return out

    # -- admission -------------------------------------------------------------------------

    async def admit(self, principal: Principal) -> Admission:
        """Check every limit and charge one request, atomically.

        Raises :class:`~aiservice.errors.RateLimitError` (429, ``Retry-After``) when a limit
        is reached, :class:`~aiservice.errors.ServiceUnavailableError` when the backend is
        unreachable and ``limits.on_backend_error`` is ``deny``.
        """
        pending = self.pending(principal)
        return _NO_LIMITS if pending is None else await pending.run()

    def pending(self, principal: Principal) -> PendingAdmission | None:
        """The admission of one request, to run alone (:meth:`PendingAdmission.run`) or in
        the same round trip as the response-cache lookup; ``None``: nothing limits it."""
        if not self.applies_to(principal):
            return None
        counters = self._counters(principal)
        if not counters:
            return None
        items = [
            Consume(c.key, 1 if c.limit_name == "requests" else 0, c.ttl, c.limit, need=1)
            for c in counters
        ]
        return PendingAdmission(self, counters, items)

    def _backend_failed(self, exc: Exception) -> Admission:
        policy = self.limits.on_backend_error
        BACKEND_ERRORS.labels(policy).inc()
        # Once per interval: during an outage every request lands here, and a warning per
        # request would flood the logs (the counter above has the exact number).
        now = time.monotonic()
        if self._last_warning is None or now - self._last_warning >= WARN_INTERVAL:
            self._last_warning = now
            log.warning(
                "rate-limit backend unavailable (%s); policy: %s", type(exc).__name__, policy
            )
        if policy == "deny":
            raise ServiceUnavailableError(
                "rate limits cannot be checked right now; retry shortly",
                code="rate_limiter_unavailable",
                headers={"retry-after": "1"},
            ) from exc
        return Admission({})

    def _rejection(
        self, counters: Sequence[_Counter], items: Sequence[Consume], values: Sequence[int]
    ) -> RateLimitError:
        over = [
            c
            for c, item, value in zip(counters, items, values, strict=True)
            if c.limit is not None and value + item.required > c.limit
        ]
        # The budget wins (it lasts the longest), then the latest reset.
        worst = max(over, key=lambda c: (c.limit_name == "budget", c.reset_at))
        REJECTIONS.labels(worst.scope, worst.limit_name).inc()
        retry_after = max(1, math.ceil(worst.reset_at - self._clock()))
        headers = self._headers(counters, values)
        headers["retry-after"] = str(retry_after)
        who = "this API key" if worst.scope == "key" else "the service"
        if worst.limit_name == "budget":
            return RateLimitError(
                f"the daily budget of {who} is exhausted; it resets at 00:00 UTC",
                code="budget_exceeded",
                headers=headers,
            )
        return RateLimitError(
            f"{worst.limit_name} per minute limit of {who} reached; retry in {retry_after}s",
            code="rate_limit_exceeded",
            headers=headers,
        )

    def _headers(self, counters: Sequence[_Counter], values: Sequence[int]) -> dict[str, str]:
        """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``: the tightest scope."""
        headers: dict[str, str] = {}
        tightest: dict[str, tuple[int, _Counter]] = {}
        for counter_, value in zip(counters, values, strict=True):
            if counter_.limit is None or counter_.limit_name == "budget":
                continue
            remaining = max(0, counter_.limit - value)
            best = tightest.get(counter_.limit_name)
            if best is None or remaining < best[0]:
                tightest[counter_.limit_name] = (remaining, counter_)
        for name, (remaining, c) in tightest.items():
            headers[f"x-ratelimit-limit-{name}"] = str(c.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(remaining)
            headers[f"x-ratelimit-reset-{name}"] = f"{max(0.0, c.reset_at - self._clock()):.0f}s"
        return headers

    # -- usage (an accounting listener) ----------------------------------------------------

    async def record(self, usage: UsageRecord) -> None:
        """Charge tokens and cost of a finished upstream call (``Accountant`` listener)."""
        principal = usage.principal or ANONYMOUS
        if not self.applies_to(principal):
            return
        amounts = {
            "tokens": usage.input_tokens + usage.output_tokens,
            "budget": round(usage.cost_usd * MICRO),
        }
        items = [
            Consume(c.key, amounts[c.limit_name], c.ttl)
            for c in self._counters(principal, charge_only=True)
            if amounts[c.limit_name] > 0
        ]
        if not items:
            return
        deferred = _DEFERRED.get()
        if deferred is not None:  # charged with the cache store, in its round trip
            deferred.extend(items)
            return
        try:
            await self.backend.consume(items)
        except Exception as exc:  # usage that cannot be charged is lost, not a failure
            log.warning("could not charge usage to rate limits: %s", type(exc).__name__)


class PendingAdmission:
    """One request's admission: the counters to consume and how to read the result."""

    def __init__(self, limiter: RateLimiter, counters: list[_Counter], items: list[Consume]):
        self.limiter, self.counters, self.items = limiter, counters, items

    async def run(self) -> Admission:
        """Admit alone: one ``consume`` round trip."""
        try:
            result = await self.limiter.backend.consume(self.items)
        except Exception as exc:  # fail-open wrapper or a raw backend: policy decides
            return self.failed(exc)
        return self.settle(result)

    def settle(self, result: ConsumeResult) -> Admission:
        """The admission for ``result``; raises the 429 when it was refused."""
        if not result.allowed:
            raise self.limiter._rejection(self.counters, self.items, result.values)
        return Admission(self.limiter._headers(self.counters, result.values))

    def failed(self, exc: Exception) -> Admission:
        """The backend could not answer: ``limits.on_backend_error`` decides (or 503)."""
        return self.limiter._backend_failed(exc)


_DEFERRED: ContextVar[list[Consume] | None] = ContextVar("aiservice_deferred_charges", default=None)


@contextmanager
def deferred_charges() -> Iterator[list[Consume]]:
    """Within this block (one task), :meth:`RateLimiter.record` collects its charges in the
    yielded list instead of sending them: the caller sends them with its own write."""
    charges: list[Consume] = []
    token = _DEFERRED.set(charges)
    try:
        yield charges
    finally:
        _DEFERRED.reset(token)

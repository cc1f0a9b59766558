"""Metrics, cost and usage records: the one place where a finished call is accounted.

:meth:`Accountant.report` turns a finished call's token usage into Prometheus counters
and a :class:`UsageRecord`, then hands the record to every registered listener (budgets,
per-key token limits, audit logs). Listener failures are logged, never raised: accounting
must not fail a request that already succeeded upstream.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Literal, NamedTuple

from ..observability.metrics import counter, gauge, histogram, labelled

if TYPE_CHECKING:
    from ..config import PriceSettings
    from ..security.apikeys import Principal

__all__ = [
    "Accountant",
    "UsageListener",
    "UsageRecord",
    "price_for",
]

log = logging.getLogger("aiservice.llm")

LLM_REQUESTS = counter(
    "aiservice_llm_requests_total",
    "Upstream LLM calls (each attempt) by provider, model and outcome.",
    ("provider", "model", "status"),
)
LLM_DURATION = histogram(
    "aiservice_llm_request_duration_seconds",
    "Duration of successful upstream LLM calls (whole stream for streams).",
    ("provider", "model"),
)
LLM_TTFT = histogram(
    "aiservice_llm_time_to_first_token_seconds",
    "Time from the request to the first streamed chunk.",
    ("provider", "model"),
)
LLM_TOKENS = counter(
    "aiservice_llm_tokens_total",
    "Tokens by provider, model and type.",
    ("provider", "model", "type"),
)
LLM_COST = counter(
    "aiservice_llm_cost_usd_total",
    "Estimated cost in USD from the pricing table.",
    ("provider", "model"),
)
LLM_FALLBACKS = counter(
    "aiservice_llm_fallbacks_total",
    "Times a public model fell back from a failing deployment to the next one.",
    ("model", "provider"),
)
LLM_COOLDOWNS = counter(
    "aiservice_llm_cooldowns_total",
    "Times a deployment was cooled down by the circuit breaker.",
    ("provider", "model"),
)
_tokens = labelled(LLM_TOKENS)
_cost = labelled(LLM_COST)
LLM_COOLED = gauge(
    "aiservice_llm_deployment_cooled_down",
    "1 while a deployment is cooled down (skipped), else 0.",
    ("provider", "model"),
)


class UsageRecord(NamedTuple):
    """A finished upstream call, as budgets and audit logs see it."""

    kind: Literal["chat", "embeddings"]
    public_model: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    principal: Principal | None


UsageListener = Callable[[UsageRecord], Awaitable[None]]


def price_for(
    pricing: Mapping[str, PriceSettings], provider: str, model: str, public_model: str
) -> PriceSettings | None:
    """Most specific first: ``provider/model``, the upstream model, the public name."""
    for key in (f"{provider}/{model}", model, public_model):
        if key in pricing:
            return pricing[key]
    return None


class Accountant:
    def __init__(self, pricing: Mapping[str, PriceSettings]) -> None:
        self.pricing = pricing
        self.listeners: list[UsageListener] = []

    def cost(
        self, provider: str, model: str, public_model: str, tokens_in: int, tokens_out: int
    ) -> float:
        price = price_for(self.pricing, provider, model, public_model)
        if price is None:
            return 0.0
        return (tokens_in * price.input + tokens_out * price.output) / 1_000_000

    async def report(
        self,
        kind: Literal["chat", "embeddings"],
        public_model: str,
        provider: str,
        model: str,
        usage: Mapping[str, int] | None,
        principal: Principal | None,
    ) -> UsageRecord:
        usage = usage or {}
        tokens_in = int(usage.get("prompt_tokens") or 0)
        tokens_out = int(usage.get("completion_tokens") or 0)
        cost = self.cost(provider, model, public_model, tokens_in, tokens_out)
        _tokens(provider, model, "input").inc(tokens_in)
        _tokens(provider, model, "output").inc(tokens_out)
        if cost:
            _cost(provider, model).inc(cost)
        record = UsageRecord(
            kind, public_model, provider, model, tokens_in, tokens_out, cost, principal
        )
        for listener in list(self.listeners):
            try:
                await listener(record)
            except Exception:  # accounting never fails a request that already succeeded
                log.exception("usage listener failed")
        return record

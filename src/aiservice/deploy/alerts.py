"""The Prometheus alert rules, with the thresholds and ``for:`` durations of ``alerts:``.

:func:`rules_text` writes the rule groups (``rule_files:`` format, comments included) of
the file ``aiservice render --target prometheus`` writes; the k8s ``PrometheusRule`` wraps
the same groups. Each
rule is a template whose ``{name}`` tokens are filled from its settings (only the listed
tokens are replaced, so PromQL's label braces are left alone); the defaults render the
rules as they always shipped (a test compares with the committed
``prometheus/aiservice-rules.yaml``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config.alerts import alerts_of
from .common import header

if TYPE_CHECKING:
    from ..config import Settings
    from ..config.alerts import AlertSettings, AlertsSettings

__all__ = ["RULES", "RULE_FILE", "Rule", "render_prometheus", "rule_file", "rules_text"]

RULE_FILE = "prometheus/aiservice-rules.yaml"

NOTE = [
    "Prometheus alerting rules (rule-file format: `rule_files:` in prometheus.yml).",
    "`aiservice render --target k8s` wraps the same groups in a PrometheusRule.",
    "Thresholds and `for:` durations are the `alerts:` settings (docs/observability.md).",
]


@dataclass(frozen=True, slots=True)
class Rule:
    alert: str
    setting: str
    """The key under ``alerts:`` holding this rule's threshold and ``for``."""
    severity: str
    expr: str
    summary: str
    description: str
    comment: str = ""


RULES: list[Rule] = [
    Rule(
        alert="AIServiceHighErrorRate",
        setting="high_error_rate",
        severity="critical",
        comment=(
            "{percent} of HTTP answers are 5xx (upstream failures after fallback, timeouts, bugs)."
        ),
        expr="""\
sum by (job) (rate(aiservice_http_requests_total{status=~"5.."}[5m]))
  / sum by (job) (rate(aiservice_http_requests_total[5m]))
> {threshold}""",
        summary=(
            "aiservice {{ $labels.job }}: {{ $value | humanizePercentage }} of requests fail with "
            "5xx"
        ),
        description=(
            "More than {percent} of HTTP requests answered 5xx for {for}. Check "
            "aiservice_llm_requests_total by status and the logs."
        ),
    ),
    Rule(
        alert="AIServiceHighLatencyP99",
        setting="high_latency_p99",
        severity="warning",
        comment="Streamed answers count until their last chunk, so the bound is generous.",
        expr=(
            "histogram_quantile(0.99,\n"
            "  sum by (job, le) (rate(aiservice_http_request_duration_seconds_bucket"
            '{route!~"/health/.*|/metrics"}[5m])))\n'
            "> {threshold}"
        ),
        summary="aiservice {{ $labels.job }}: p99 HTTP latency is {{ $value | humanizeDuration }}",
        description=(
            "The 99th percentile of HTTP request duration has been above {threshold}s for {for}."
        ),
    ),
    Rule(
        alert="AIServiceUpstreamLatencyP99",
        setting="upstream_latency_p99",
        severity="warning",
        expr="""\
histogram_quantile(0.99,
  sum by (job, provider, model, le) (rate(aiservice_llm_request_duration_seconds_bucket[5m])))
> {threshold}""",
        summary=(
            "aiservice {{ $labels.job }}: p99 of {{ $labels.provider }}/{{ $labels.model }} is {{ "
            "$value | humanizeDuration }}"
        ),
        description=(
            "Successful upstream LLM calls to this deployment took over {threshold}s at the 99th "
            "percentile for {for}."
        ),
    ),
    Rule(
        alert="AIServiceDailyCostHigh",
        setting="daily_cost_high",
        severity="warning",
        comment="The budget: {threshold} USD over the last 24 hours (pricing: table estimate).",
        expr="""\
sum by (job) (increase(aiservice_llm_cost_usd_total[1d])) > {threshold}""",
        summary='aiservice {{ $labels.job }}: {{ $value | printf "%.2f" }} USD of LLM calls in 24h',
        description=(
            "Estimated LLM cost over the last 24 hours is above {threshold} USD. Per-key budgets "
            "(limits:) stop spending; this only warns."
        ),
    ),
    Rule(
        alert="AIServiceCacheCold",
        setting="cache_cold",
        severity="warning",
        comment="""\
Under {percent} hits over 30 minutes while at least {min_lookups_per_second} lookups/s
flow: an emptied or misconfigured cache (namespace, backend unreachable and failing open).""",
        expr="""\
(
  sum by (job) (rate(aiservice_cache_requests_total{result="hit"}[30m]))
    / sum by (job) (rate(aiservice_cache_requests_total{result=~"hit|miss|coalesced"}[30m]))
  < {threshold}
)
and on (job)
sum by (job) (rate(aiservice_cache_requests_total{result=~"hit|miss|coalesced"}[30m]))"""
        " > {min_lookups_per_second}",
        summary=(
            "aiservice {{ $labels.job }}: response cache hit rate is {{ $value | "
            "humanizePercentage }}"
        ),
        # The rate window (30m) plus `for`: how long the hit rate has been low.
        description=(
            "The LLM response cache has answered under {percent} of lookups for {window_and_for} "
            "while traffic flows. Check aiservice_state_backend_errors_total and the cache backend."
        ),
    ),
    Rule(
        alert="AIServiceDeploymentCooledDown",
        setting="deployment_cooled_down",
        severity="warning",
        expr="""\
max by (job, provider, model) (aiservice_llm_deployment_cooled_down) == 1""",
        summary=(
            "aiservice {{ $labels.job }}: {{ $labels.provider }}/{{ $labels.model }} is cooled down"
        ),
        description=(
            "The circuit breaker has kept skipping this deployment for {for} after repeated "
            "upstream failures; traffic goes to its fallbacks."
        ),
    ),
    Rule(
        alert="AIServiceModelUnavailable",
        setting="model_unavailable",
        severity="critical",
        comment="""\
Every deployment of a model cooling down: the gateway answers 503
deployments_cooling_down without calling upstream, while a breaker is open.""",
        expr="""\
sum by (job) (rate(aiservice_http_requests_total{route=~"/v1/.*", status="503"}[5m])) > 0
and on (job)
max by (job) (aiservice_llm_deployment_cooled_down) == 1""",
        summary="aiservice {{ $labels.job }}: a model has every deployment cooling down",
        description=(
            "The OpenAI-compatible routes answer 503 while deployments are cooled down: clients of "
            "at least one model get no answer. See the Deployments cooled down panel."
        ),
    ),
    Rule(
        alert="AIServiceManyFallbacks",
        setting="many_fallbacks",
        severity="warning",
        expr="""\
sum by (job, model) (increase(aiservice_llm_fallbacks_total[15m])) > {threshold}""",
        summary=(
            "aiservice {{ $labels.job }}: model {{ $labels.model }} fell back {{ $value | printf "
            '"%.0f" }} times in 15m'
        ),
        description=(
            "The first deployments of this model keep failing and requests are served by the next "
            "ones (slower, maybe costlier)."
        ),
    ),
]

_SECONDS = {"y": 365 * 86_400, "w": 7 * 86_400, "d": 86_400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"([0-9]+)(ms|[ywdhms])")


def number(value: float) -> str:
    """A PromQL literal as short as it reads: ``100``, ``0.05``, ``1e-05``."""
    text = repr(float(value))
    return text.removesuffix(".0")


def percent(ratio: float) -> str:
    return f"{number(round(ratio * 100, 6))}%"


def seconds(duration: str) -> float:
    return sum(
        int(count) * (0.001 if unit == "ms" else _SECONDS[unit])
        for count, unit in _PART.findall(duration)
    )


def spoken(total: float) -> str:
    """``600`` -> ``10 minutes``, ``3600`` -> ``an hour``: for the descriptions."""
    for size, one, many in ((3600, "an hour", "hours"), (60, "a minute", "minutes")):
        if total >= size and total % size == 0:
            count = int(total // size)
            return one if count == 1 else f"{count} {many}"
    return f"{number(total)} seconds"


def _fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _values(alert: AlertSettings) -> dict[str, str]:
    values = {"for": spoken(seconds(alert.for_))}
    values["window_and_for"] = spoken(30 * 60 + seconds(alert.for_))
    if alert.threshold is not None:
        values["threshold"] = number(alert.threshold)
        values["percent"] = percent(alert.threshold)
    if alert.min_lookups_per_second is not None:
        values["min_lookups_per_second"] = number(alert.min_lookups_per_second)
    return values


def _rule_lines(rule: Rule, alert: AlertSettings) -> list[str]:
    values = _values(alert)
    lines = [f"      - alert: {rule.alert}"]
    lines += [f"        # {line}" for line in _fill(rule.comment, values).splitlines()]
    lines.append("        expr: |")
    lines += [f"          {line}" for line in _fill(rule.expr, values).splitlines()]
    lines += [
        f"        for: {alert.for_}",
        "        labels:",
        f"          severity: {rule.severity}",
        "        annotations:",
        # JSON strings are YAML double-quoted scalars.
        f"          summary: {json.dumps(_fill(rule.summary, values), ensure_ascii=False)}",
        f"          description: {json.dumps(_fill(rule.description, values), ensure_ascii=False)}",
    ]
    return lines


def rule_file(settings: Settings) -> str:
    """The rule file, with its rendered-file header."""
    return header("prometheus", NOTE) + rules_text(alerts_of(settings))


def render_prometheus(settings: Settings) -> dict[str, str]:
    """The ``prometheus`` render target: the rule file alone."""
    return {RULE_FILE: rule_file(settings)}


def rules_text(alerts: AlertsSettings) -> str:
    """The rule groups for these settings (``groups:`` and on)."""
    lines = ["groups:", "  - name: aiservice", "    rules:"]
    for rule in RULES:
        lines += _rule_lines(rule, getattr(alerts, rule.setting))
    return "\n".join(lines) + "\n"

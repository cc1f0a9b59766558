"""Every metric the shipped dashboard and alert rules query is exported by a real app after
real traffic: chat (cached and streamed), embeddings, an orchestrator run against a loopback
function, a fallback that cools a deployment down and a model left with none."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiservice.config import Settings
from aiservice.deploy.monitoring import dashboard_json, rule_groups
from tests.orchestrator.support import Recorder, ml_app
from tests.providers.contract import Failure
from tests.support.llm_servers import (
    CLIENT_KEY,
    ENVIRON,
    SdkFactory,
    Upstreams,
    llm_config,
    sdk_for,
    upstream_servers,
    upstreams,
)
from tests.support.servers import serve_app

__all__ = ["sdk_for", "upstream_servers", "upstreams"]  # fixtures used below

NAME = re.compile(r"\baiservice_[a-z_]+")
# A histogram is queried through its series; the exposition names the family by _count.
SERIES_SUFFIX = re.compile(r"_(bucket|sum|count)$")
GAUGES = {"aiservice_llm_deployment_cooled_down", "aiservice_build_info"}


def queried_metrics() -> set[str]:
    """Metric names in the dashboard's queries and variables and in the rules' expressions."""
    board = json.loads(dashboard_json())
    texts = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    texts += [json.dumps(v.get("query")) for v in board["templating"]["list"]]
    texts += [r["expr"] for g in rule_groups(Settings()) for r in g["rules"]]
    return {SERIES_SUFFIX.sub("", name) for text in texts for name in NAME.findall(text)}


def scrape(text: str) -> dict[str, float]:
    """Sample name -> sum over its label sets (``name{...}`` parsed by prometheus_client)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def exported(name: str, samples: dict[str, float]) -> float | None:
    """The counter/gauge value, or a histogram's observation count; None if absent."""
    for candidate in (name, name + "_count"):
        if candidate in samples:
            return samples[candidate]
    return None


@pytest.fixture
def function_url() -> Iterator[str]:
    with serve_app(ml_app(Recorder())) as url:
        yield url


def settings_for(make_settings: Any, upstreams: Upstreams, function_url: str) -> Any:
    # One failure cools a deployment down for the whole test; the cache answers repeats.
    config: dict[str, Any] = llm_config(
        upstreams, max_retries=0, failure_threshold=1, cooldown_seconds=60
    )
    config["cache"] = {"mode": "on", "backend": "memory"}
    config["flows"] = {"probe": {"steps": {"one": {"url": f"{function_url}/fn/one"}}}}
    config["orchestrator"] = {"default_step_timeout": 5.0}
    return make_settings(config, ENVIRON)


async def traffic(sdk: Any, http: httpx.AsyncClient, upstreams: Upstreams) -> None:
    user = [{"role": "user", "content": "dashboard probe"}]
    first = await sdk.chat.completions.with_raw_response.create(model="chat", messages=user)
    again = await sdk.chat.completions.with_raw_response.create(model="chat", messages=user)
    assert [first.headers["x-aiservice-cache"], again.headers["x-aiservice-cache"]] == [
        "miss",
        "hit",
    ]
    streamed = [{"role": "user", "content": "stream probe"}]
    stream = await sdk.chat.completions.create(model="chat", messages=streamed, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    vectors = await sdk.embeddings.create(model="embed", input=["a", "b"])
    assert len(vectors.data) == 2
    run = await http.post(
        "/orchestrate/probe", json={}, headers={"Authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert run.status_code == 200, run.text
    upstreams.primary.inject(Failure(status=500))
    fallback = await sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "fallback probe"}]
    )
    assert fallback.choices[0].message.content.startswith("backup: ")
    unavailable = await http.post(
        "/v1/chat/completions",
        json={"model": "solo", "messages": [{"role": "user", "content": "solo probe"}]},
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["code"] == "deployments_cooling_down"


def test_the_queries_name_the_metrics_the_dashboard_must_show() -> None:
    """The loose PromQL parse finds what the panels and alerts are about."""
    names = queried_metrics()
    assert {
        "aiservice_http_requests_total",
        "aiservice_http_request_duration_seconds",
        "aiservice_llm_request_duration_seconds",
        "aiservice_llm_tokens_total",
        "aiservice_llm_cost_usd_total",
        "aiservice_cache_requests_total",
        "aiservice_llm_fallbacks_total",
        "aiservice_llm_cooldowns_total",
        "aiservice_orchestrator_executions_total",
        "aiservice_orchestrator_step_duration_seconds",
    } <= names
    assert not any(SERIES_SUFFIX.search(n) for n in names)


async def test_every_queried_metric_is_exported_after_real_traffic(
    make_settings: Any, upstreams: Upstreams, sdk_for: SdkFactory, function_url: str
) -> None:
    settings = settings_for(make_settings, upstreams, function_url)
    async with sdk_for(settings) as (sdk, http):
        before = scrape((await http.get("/metrics")).text)
        await traffic(sdk, http, upstreams)
        after_text = (await http.get("/metrics")).text
    after = scrape(after_text)
    missing = sorted(n for n in queried_metrics() if exported(n, after) is None)
    assert not missing, f"queried but not exported: {missing}"
    # Counted by this traffic, not left over from other tests in the process.
    unchanged = sorted(
        n
        for n in queried_metrics() - GAUGES
        if (exported(n, after) or 0.0) <= (exported(n, before) or 0.0)
    )
    assert not unchanged, f"not counted by the traffic: {unchanged}"
    assert 'aiservice_llm_deployment_cooled_down{model="gpt-test",provider="primary"} 1.0' in (
        after_text
    )

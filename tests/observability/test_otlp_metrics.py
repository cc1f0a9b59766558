"""``metrics.sink: otlp``: the one registry exported as OpenTelemetry metrics over OTLP/HTTP
to a loopback receiver (decoded from the protobuf the SDK's exporter sent)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from aiservice import Settings
from aiservice.observability.otlp_metrics import OtlpSink, metrics_data
from aiservice.platforms.aws_lambda import LambdaHandler
from tests.conftest import app_client
from tests.observability.otlp_receiver import OtlpReceiver, otlp_receiver

from .conftest import chat_event

CHAT = {"model": "fake", "messages": [{"role": "user", "content": "count my tokens"}]}


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


def otlp_settings(receiver: OtlpReceiver, **metrics: Any) -> Settings:
    return Settings(
        metrics={"sink": "otlp", **metrics},
        tracing={"exporter": {"endpoint": receiver.url, "headers": {"x-api-key": "k1"}}},
        pricing={"fake": {"input": 2.0, "output": 4.0}},
    )


def point(metrics: list[dict[str, Any]], name: str, **labels: str) -> Any:
    """The value of the series ``name{labels}`` in the last export that has it."""
    for metric in reversed(metrics):
        if metric["name"] == name:
            for attrs, value in metric["points"]:
                if all(attrs.get(k) == v for k, v in labels.items()):
                    return value
    raise AssertionError(f"{name}{labels} not exported: {[m['name'] for m in metrics]}")


def scraped(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(sample)


async def test_app_exports_the_registry_values_over_otlp(otlp: OtlpReceiver) -> None:
    route = {"route": "/v1/chat/completions", "method": "POST", "status": "200"}
    async with app_client(otlp_settings(otlp)) as client:
        response = await client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 200
        scrape = (await client.get("/metrics")).text
    # Shutdown exported once more: the values are those of the scrape.
    metrics = otlp.metrics
    requests = point(metrics, "aiservice_http_requests", **route)
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(route.items()))
    assert requests == scraped(scrape, f"aiservice_http_requests_total{{{labels}}}")
    latency = point(metrics, "aiservice_http_request_duration_seconds", **route)
    assert latency["count"] == requests and sum(latency["counts"]) == requests
    assert latency["bounds"][:3] == [0.005, 0.01, 0.025]  # the registry's own buckets
    assert len(latency["counts"]) == len(latency["bounds"]) + 1
    tokens = point(metrics, "aiservice_llm_tokens", type="input")
    assert tokens > 0
    kinds = {m["name"]: (m["kind"], m["temporality"]) for m in metrics}
    assert kinds["aiservice_http_requests"] == ("sum", 2)  # 2: cumulative
    assert kinds["aiservice_http_request_duration_seconds"] == ("histogram", 2)
    assert all(h.get("x-api-key") == "k1" for h in otlp.headers)


def test_lambda_invocation_exports_before_returning(
    aws_handler: Callable[[Settings], LambdaHandler], otlp: OtlpReceiver
) -> None:
    handler = aws_handler(otlp_settings(otlp))
    assert handler(chat_event(), None)["statusCode"] == 200
    # No wait, no shutdown: the bridge flushed its sink inside the invocation.
    assert point(otlp.metrics, "aiservice_llm_requests", provider="fake", status="ok") >= 1


def test_nothing_moved_nothing_sent(otlp: OtlpReceiver) -> None:
    registry = CollectorRegistry()
    hits = Counter("t_hits", "hits", ["k"], registry=registry)
    settings = otlp_settings(otlp)
    sink = OtlpSink(settings, registry=registry)
    hits.labels("a").inc()
    sink.flush()
    sink.flush()
    assert len(otlp.headers) == 1
    hits.labels("a").inc(2)
    sink.flush()
    assert len(otlp.headers) == 2
    assert point(otlp.metrics, "t_hits", k="a") == 3


def test_conversion_is_exact() -> None:
    registry = CollectorRegistry()
    latency = Histogram("t_seconds", "latency", ["r"], buckets=(0.1, 1.0), registry=registry)
    level = Gauge("t_level", "level", registry=registry)
    for value in (0.05, 0.5, 0.7, 3.0):
        latency.labels("x").observe(value)
    level.set(4)
    data = metrics_data(registry, Resource.create({"service.name": "t"}), 1)
    [scope] = data.resource_metrics[0].scope_metrics
    by_name = {m.name: m for m in scope.metrics}
    [hp] = by_name["t_seconds"].data.data_points
    assert (hp.count, hp.sum) == (4, pytest.approx(4.25))
    assert list(hp.explicit_bounds) == [0.1, 1.0] and list(hp.bucket_counts) == [1, 2, 1]
    assert (hp.min, hp.max) == (0.0, 1.0)  # bucket edges: Prometheus keeps no min/max
    assert by_name["t_seconds"].unit == "s"
    [gp] = by_name["t_level"].data.data_points
    assert gp.value == 4

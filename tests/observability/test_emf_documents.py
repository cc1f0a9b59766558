"""EMF encoding of registry deltas: units, dimensions, histograms and the spec's limits."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from aiservice import Settings
from aiservice.observability.emf import EmfSink

from .conftest import metric_values, units, validate_emf


def sink_for(registry: CollectorRegistry, **metrics: Any) -> tuple[EmfSink, io.StringIO]:
    out = io.StringIO()
    sink = EmfSink(Settings(metrics=metrics), registry=registry, stream=out, clock=lambda: 1.7e9)
    return sink, out


def flushed(sink: EmfSink, out: io.StringIO) -> list[dict[str, Any]]:
    out.seek(0)
    out.truncate()
    sink.flush()
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    for doc in docs:
        validate_emf(doc)
    return docs


def test_counter_deltas_with_allowlisted_dimensions_only() -> None:
    registry = CollectorRegistry()
    labels = ("provider", "model", "status", "key")
    requests = Counter("aiservice_llm_requests_total", "", labels, registry=registry)
    sink, out = sink_for(registry)
    requests.labels("openai", "gpt", "ok", "key-1").inc(2)
    requests.labels("openai", "gpt", "ok", "key-2").inc(3)
    [doc] = flushed(sink, out)
    assert doc["_aws"]["Timestamp"] == 1_700_000_000_000
    assert metric_values(doc) == {"llm_requests": 5}  # summed over the key label
    assert "key" not in doc and "key-1" not in json.dumps(doc)
    [directive] = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["model", "provider", "service", "status"]]
    assert flushed(sink, out) == []  # nothing changed: nothing written
    requests.labels("openai", "gpt", "ok", "key-1").inc()
    assert metric_values(flushed(sink, out)[0]) == {"llm_requests": 1}


def test_counts_from_before_the_sink_are_not_reported() -> None:
    registry = CollectorRegistry()
    hits = Counter("aiservice_cache_requests_total", "", ("result",), registry=registry)
    hits.labels("hit").inc(7)
    sink, out = sink_for(registry)
    hits.labels("hit").inc()
    assert metric_values(flushed(sink, out)[0]) == {"cache_requests": 1}


def test_units_and_gauges() -> None:
    registry = CollectorRegistry()
    cost = Counter("aiservice_llm_cost_usd_total", "", registry=registry)
    things = Counter("aiservice_things_total", "", registry=registry)
    wait = Histogram("aiservice_wait_seconds", "", registry=registry)
    level = Gauge("aiservice_level", "", registry=registry)
    sink, out = sink_for(registry)
    cost.inc(0.5)
    things.inc()
    wait.observe(0.2)
    level.set(3)  # a gauge has no delta: not pushed
    [doc] = flushed(sink, out)
    assert units(doc) == {"llm_cost_usd": "None", "things": "Count", "wait_seconds": "Seconds"}
    assert metric_values(doc) == {
        "llm_cost_usd": 0.5,
        "things": 1,
        "wait_seconds": {"Values": [pytest.approx(0.2)], "Counts": [1]},
    }


def test_histogram_deltas_use_the_exact_mean_or_bucket_midpoints() -> None:
    registry = CollectorRegistry()
    latency = Histogram("aiservice_x_seconds", "", buckets=(0.1, 1.0, 10.0), registry=registry)
    sink, out = sink_for(registry)
    latency.observe(0.3)
    latency.observe(0.5)
    [doc] = flushed(sink, out)
    assert doc["x_seconds"] == {"Values": [pytest.approx(0.4)], "Counts": [2]}
    latency.observe(0.05)
    latency.observe(5.0)
    latency.observe(50.0)
    [doc] = flushed(sink, out)
    # (0, 0.1] -> 0.05, (1, 10] -> 5.5, +Inf -> its lower bound 10
    assert doc["x_seconds"] == {"Values": [0.05, 5.5, 10.0], "Counts": [1, 1, 1]}


def test_http_status_becomes_its_class() -> None:
    registry = CollectorRegistry()
    http = Counter("aiservice_http_requests_total", "", ("route", "status"), registry=registry)
    sink, out = sink_for(registry)
    http.labels("/v1/models", "404").inc()
    [doc] = flushed(sink, out)
    assert (doc["route"], doc["status_class"]) == ("/v1/models", "4xx")


def test_upstream_status_codes_become_classes_under_status() -> None:
    registry = CollectorRegistry()
    llm = Counter("aiservice_llm_requests_total", "", ("provider", "status"), registry=registry)
    sink, out = sink_for(registry)
    llm.labels("a", "429").inc()
    [doc] = flushed(sink, out)
    assert doc["status"] == "4xx" and "status_class" not in doc


def test_conflicting_dimension_values_go_to_separate_documents() -> None:
    registry = CollectorRegistry()
    llm = Counter("aiservice_llm_requests_total", "", ("provider", "status"), registry=registry)
    sink, out = sink_for(registry)
    llm.labels("a", "ok").inc()
    llm.labels("a", "timeout").inc()
    docs = flushed(sink, out)
    assert sorted((d["status"], d["llm_requests"]) for d in docs) == [("ok", 1), ("timeout", 1)]


def test_more_than_100_metrics_are_split_across_documents() -> None:
    registry = CollectorRegistry()
    counters = [Counter(f"aiservice_m{i}_total", "", registry=registry) for i in range(250)]
    sink, out = sink_for(registry)
    for c in counters:
        c.inc()
    docs = flushed(sink, out)
    assert [len(metric_values(d)) for d in docs] == [100, 100, 50]
    assert sum(sum(metric_values(d).values()) for d in docs) == 250


def test_more_than_100_filled_buckets_are_merged() -> None:
    registry = CollectorRegistry()
    bounds = [i / 10 for i in range(1, 301)]
    h = Histogram("aiservice_fine_seconds", "", buckets=bounds, registry=registry)
    sink, out = sink_for(registry)
    for b in bounds:
        h.observe(b - 0.05)
    [doc] = flushed(sink, out)
    value = doc["fine_seconds"]
    assert len(value["Values"]) <= 100 and sum(value["Counts"]) == 300
    total = sum(v * c for v, c in zip(value["Values"], value["Counts"], strict=True))
    assert total == pytest.approx(sum(b - 0.05 for b in bounds))


def test_dimensions_and_namespace_are_configurable() -> None:
    registry = CollectorRegistry()
    c = Counter("aiservice_llm_requests_total", "", ("provider", "model"), registry=registry)
    sink, out = sink_for(registry, namespace="Team/AI", dimensions=["provider"])
    c.labels("p", "m").inc()
    [doc] = flushed(sink, out)
    [directive] = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Team/AI"
    assert directive["Dimensions"] == [["provider", "service"]] and "model" not in doc

"""Registry deltas: the fast reading agrees with prometheus_client's public collect()."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from aiservice.observability.snapshot import Hist, Snapshot


class MyCounter(Counter):
    """A subclass: read through the public collect(), not the fast path."""


def test_fast_and_public_readings_report_the_same_changes() -> None:
    registry = CollectorRegistry()
    plain = Counter("c_plain_total", "", registry=registry)
    labelled = Counter("c_lab_total", "", ("a", "b"), registry=registry)
    custom = MyCounter("c_custom_total", "", ("x",), registry=registry)
    latency = Histogram("h_seconds", "", ("route",), buckets=(0.1, 1, 10), registry=registry)
    level = Gauge("g", "", registry=registry)
    fast, public = Snapshot(registry), Snapshot(registry, fast=False)
    rng = random.Random(7)
    for _ in range(60):
        for _ in range(rng.randrange(4)):
            choice = rng.randrange(5)
            if choice == 0:
                plain.inc(rng.choice([1, 0.5]))
            elif choice == 1:
                labelled.labels(rng.choice("xy"), rng.choice("uv")).inc()
            elif choice == 2:
                custom.labels(rng.choice("pq")).inc(2)
            elif choice == 3:
                latency.labels(rng.choice(["/a", "/b"])).observe(rng.uniform(0.01, 20))
            else:
                level.set(rng.random())
        assert fast.changes() == public.changes()


def test_changes_are_deltas_and_start_at_the_snapshot() -> None:
    registry = CollectorRegistry()
    hits = Counter("hits_total", "", ("result",), registry=registry)
    latency = Histogram("lat_seconds", "", buckets=(1, 2), registry=registry)
    hits.labels("hit").inc(5)
    latency.observe(0.5)
    snapshot = Snapshot(registry)
    assert snapshot.changes() == {}
    hits.labels("hit").inc()
    hits.labels("miss").inc(2)
    latency.observe(1.5)
    latency.observe(9)
    changes = snapshot.changes()
    assert changes[("hits_total", ("result",), ("hit",))] == 1
    assert changes[("hits_total", ("result",), ("miss",))] == 2
    assert changes[("lat_seconds", (), ())] == Hist((1.0, 2.0, float("inf")), (0, 1, 1), 10.5)
    assert snapshot.changes() == {}

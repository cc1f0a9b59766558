"""Prometheus metrics in one aiservice registry.

Metrics are process-wide, as Prometheus expects: one scrape endpoint per process. Modules
declare theirs with :func:`counter` / :func:`histogram` / :func:`gauge`, which return the
existing collector when called again with the same name, so declaring is idempotent.

:func:`render` leaves out the ``*_created`` series (one per counter and histogram child, the
creation timestamp) unless asked: they double the scrape for no dashboard use.
``prometheus_client.disable_created_metrics()`` would do it for every registry in the
process, including an embedding application's, so the filter is applied to our scrape only.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .._version import __version__

__all__ = [
    "CONTENT_TYPE_LATEST",
    "REGISTRY",
    "counter",
    "gauge",
    "histogram",
    "labelled",
    "render",
]

REGISTRY = CollectorRegistry(auto_describe=True)

_lock = threading.Lock()
_collectors: dict[str, object] = {}

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

C = TypeVar("C", Counter, Gauge, Histogram)


def _get_or_create(kind: type[C], name: str, doc: str, labels: Sequence[str], **kw: object) -> C:
    with _lock:
        existing = _collectors.get(name)
        if existing is not None:
            if not isinstance(existing, kind):
                raise TypeError(f"metric {name} already registered as {type(existing).__name__}")
            return existing
        collector = kind(name, doc, labelnames=tuple(labels), registry=REGISTRY, **kw)  # type: ignore[arg-type]
        _collectors[name] = collector
        return collector


def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
    return _get_or_create(Counter, name, doc, labels)


def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
    return _get_or_create(Gauge, name, doc, labels)


def histogram(
    name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
) -> Histogram:
    return _get_or_create(Histogram, name, doc, labels, buckets=tuple(buckets))


def labelled(metric: C) -> Callable[..., C]:
    """``metric.labels`` with every child cached after its first lookup.

    ``labels()`` validates and joins the values and takes the metric's lock on every call;
    on a per-request path the cached child costs one dict lookup. The cache holds no more
    than the metric itself does (every child lives until the process ends).
    """
    return functools.lru_cache(maxsize=None)(metric.labels)


class _WithoutCreated(Collector):
    """A view of a registry without the ``<name>_created`` samples."""

    _TYPES = frozenset({"counter", "histogram", "summary", "gaugehistogram"})

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for metric in self._registry.collect():
            if metric.type not in self._TYPES:
                yield metric
                continue
            # A copy: a collector may hand out the same Metric object on every scrape.
            created = metric.name + "_created"
            copy = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            copy.samples = [s for s in metric.samples if s.name != created]
            yield copy


_WITHOUT_CREATED = _WithoutCreated(REGISTRY)


def render(created: bool = False) -> bytes:
    """The text exposition of the registry; ``created`` keeps the ``*_created`` series."""
    return generate_latest(REGISTRY if created else _WITHOUT_CREATED)


HTTP_REQUESTS = counter(
    "aiservice_http_requests_total",
    "HTTP requests by route template, method and status.",
    ("route", "method", "status"),
)
HTTP_LATENCY = histogram(
    "aiservice_http_request_duration_seconds",
    "HTTP request latency by route template, method and status.",
    ("route", "method", "status"),
)
BUILD_INFO = Info("aiservice_build", "Build information.", registry=REGISTRY)
BUILD_INFO.info({"version": __version__})

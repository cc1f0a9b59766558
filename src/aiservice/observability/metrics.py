"""Prometheus metrics in one aiservice registry.

Metrics are process-wide, as Prometheus expects: one scrape endpoint per process. Modules
declare theirs with :func:`counter` / :func:`histogram` / :func:`gauge`, which return the
existing collector when called again with the same name, so declaring is idempotent.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

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


def render() -> bytes:
    return generate_latest(REGISTRY)


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

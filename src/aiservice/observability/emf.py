"""CloudWatch Embedded Metric Format (EMF): the metrics registry's deltas as log lines.

On Lambda nothing scrapes ``/metrics``. :class:`EmfSink` reads the same registry the scrape
renders (one place defines every metric) and, on :meth:`~EmfSink.flush` (the Lambda bridge
calls it at the end of each invocation), writes what changed since the previous flush as
EMF JSON documents on stdout, from which CloudWatch Logs extracts the metrics.

Mapping (docs/observability.md has the table):

* a counter's delta is one value; names lose the ``aiservice_`` prefix and ``_total``
  suffix (the namespace already says aiservice; CloudWatch metrics have no types);
* a histogram's delta is ``{"Values", "Counts"}``: one entry per bucket that received
  observations, valued at the bucket's midpoint (the last finite bound for ``+Inf``), or
  the exact mean when all observations fell in one bucket (one request per invocation:
  then the value is the observed one);
* gauges and info metrics are not pushed (a delta of a gauge means nothing);
* only allowlisted labels become dimensions, the others are summed away; an HTTP
  ``status`` becomes ``status_class`` (``2xx``); ``service`` is always a dimension.

Series that share dimension keys with equal values share one document, so an ordinary
invocation writes one line; conflicting values (two token types, a retry that failed then
succeeded) and the specification's limits (100 metrics per document, 100 values per
histogram) start further documents.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from prometheus_client import CollectorRegistry

from .metrics import REGISTRY

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["MAX_METRICS", "MAX_VALUES", "EmfSink", "documents"]

MAX_METRICS = 100
MAX_VALUES = 100
MAX_DIMENSION_VALUE = 1024
PREFIX = "aiservice_"
# Labels whose value goes into the metric name instead of a dimension: input and output
# tokens change together in every request and would otherwise need two documents.
NAME_LABELS = {"aiservice_llm_tokens_total": "type"}

Labels = tuple[tuple[str, str], ...]
Dims = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Hist:
    bounds: tuple[float, ...]  # upper bounds, the last is +Inf
    counts: tuple[float, ...]  # per bucket (not cumulative)
    total: float  # the sum of observations


State = dict[tuple[str, Labels], "float | _Hist"]


def read(registry: CollectorRegistry) -> State:
    """Counter values and histogram buckets of every series in ``registry``."""
    state: State = {}
    for metric in registry.collect():
        if metric.type == "counter":
            for s in metric.samples:
                if s.name.endswith("_total"):
                    state[(s.name, tuple(sorted(s.labels.items())))] = s.value
        elif metric.type == "histogram":
            _read_histogram(metric.name, metric.samples, state)
    return state


def _read_histogram(name: str, samples: Iterable[Any], state: State) -> None:
    buckets: dict[Labels, list[tuple[float, float]]] = {}
    sums: dict[Labels, float] = {}
    for s in samples:
        if s.name == name + "_bucket":
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            buckets.setdefault(labels, []).append((float(s.labels["le"]), s.value))
        elif s.name == name + "_sum":
            sums[tuple(sorted(s.labels.items()))] = s.value
    for labels, cumulative in buckets.items():
        cumulative.sort()
        totals = [c for _, c in cumulative]
        counts = [c - p for c, p in zip(totals, [0.0, *totals[:-1]], strict=True)]
        bounds = tuple(b for b, _ in cumulative)
        state[(name, labels)] = _Hist(bounds, tuple(counts), sums.get(labels, 0.0))


def diff(current: State, previous: State) -> State:
    """What changed since ``previous``; a series that went down restarted from zero."""
    out: State = {}
    for key, now in current.items():
        before = previous.get(key)
        if isinstance(now, _Hist):
            delta = _hist_delta(now, before if isinstance(before, _Hist) else None)
            if delta is not None:
                out[key] = delta
            continue
        change = now - before if isinstance(before, float | int) and now >= before else now
        if change > 0:
            out[key] = change
    return out


def _hist_delta(now: _Hist, before: _Hist | None) -> _Hist | None:
    if before is None or before.bounds != now.bounds or sum(now.counts) < sum(before.counts):
        before = _Hist(now.bounds, (0.0,) * len(now.bounds), 0.0)
    counts = tuple(n - b for n, b in zip(now.counts, before.counts, strict=True))
    if not any(c > 0 for c in counts):
        return None
    return _Hist(now.bounds, counts, now.total - before.total)


@dataclass(slots=True)
class _Doc:
    dims: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    directives: list[tuple[Dims, list[dict[str, str]]]] = field(default_factory=list)

    def fits(self, dims: Dims, names: Iterable[str], count: int) -> bool:
        if len(self.values) + count > MAX_METRICS:
            return False
        if any(self.dims.get(k, v) != v for k, v in dims):
            return False
        return not any(n in self.values for n in names)


@dataclass(slots=True)
class _Series:
    unit: str
    value: float | _Hist


def documents(
    deltas: State,
    *,
    namespace: str,
    dimensions: Iterable[str],
    service: str,
    timestamp_ms: int,
) -> list[dict[str, Any]]:
    """EMF documents for ``deltas`` (from :func:`diff`); empty when nothing changed."""
    groups = _group(deltas, frozenset(dimensions), service)
    docs: list[_Doc] = []
    for dims in sorted(groups):
        series = sorted(groups[dims].items())
        for start in range(0, len(series), MAX_METRICS):
            chunk = series[start : start + MAX_METRICS]
            names = [n for n, _ in chunk]
            doc = next((d for d in docs if d.fits(dims, names, len(chunk))), None)
            if doc is None:
                doc = _Doc()
                docs.append(doc)
            doc.dims.update(dims)
            doc.values.update((n, _value(s.value)) for n, s in chunk)
            doc.directives.append((dims, [{"Name": n, "Unit": s.unit} for n, s in chunk]))
    return [_render(d, namespace, timestamp_ms) for d in docs]


def _group(deltas: State, allowed: frozenset[str], service: str) -> dict[Dims, dict[str, _Series]]:
    groups: dict[Dims, dict[str, _Series]] = {}
    for (name, labels), value in deltas.items():
        emf_name, dims = _project(name, labels, allowed)
        dims = (("service", service), *dims)
        group = groups.setdefault(tuple(sorted(dims)), {})
        found = group.get(emf_name)
        if found is None:
            group[emf_name] = _Series(_unit(name, isinstance(value, _Hist)), value)
        else:
            found.value = _add(found.value, value)
    return groups


def _project(name: str, labels: Labels, allowed: frozenset[str]) -> tuple[str, Dims]:
    base = name.removeprefix(PREFIX).removesuffix("_total")
    name_label = NAME_LABELS.get(name)
    dims: list[tuple[str, str]] = []
    for key, value in labels:
        if key == name_label:
            base = f"{base}_{value}"
        elif key in allowed:
            dims.append(_dimension(key, value))
    return base, tuple(dims)


def _dimension(key: str, value: str) -> tuple[str, str]:
    # HTTP status codes are summarised to their class: 2xx/4xx/5xx is what alarms use, and
    # the name differs from an upstream call's "status" (ok/timeout) so both fit one document.
    if key == "status" and len(value) == 3 and value.isdigit():
        return "status_class", f"{value[0]}xx"
    return key, (value or "none")[:MAX_DIMENSION_VALUE]


def _unit(name: str, histogram: bool) -> str:
    if name.endswith("_seconds"):
        return "Seconds"
    if "_usd" in name or histogram:
        return "None"
    return "Count"


def _add(a: float | _Hist, b: float | _Hist) -> float | _Hist:
    if isinstance(a, _Hist) and isinstance(b, _Hist):
        counts = tuple(x + y for x, y in zip(a.counts, b.counts, strict=True))
        return _Hist(a.bounds, counts, a.total + b.total)
    assert not isinstance(a, _Hist) and not isinstance(b, _Hist)
    return a + b


def _value(value: float | _Hist) -> Any:
    if not isinstance(value, _Hist):
        return value
    filled = [(i, c) for i, c in enumerate(value.counts) if c > 0]
    if len(filled) == 1:
        return {"Values": [value.total / filled[0][1]], "Counts": [filled[0][1]]}
    pairs = [(_midpoint(value.bounds, i), c) for i, c in filled]
    while len(pairs) > MAX_VALUES:  # only with custom buckets: merge neighbours
        pairs = [_merge(pairs[i : i + 2]) for i in range(0, len(pairs), 2)]
    return {"Values": [v for v, _ in pairs], "Counts": [c for _, c in pairs]}


def _midpoint(bounds: tuple[float, ...], i: int) -> float:
    upper = bounds[i]
    lower = bounds[i - 1] if i else min(0.0, upper)
    return lower if math.isinf(upper) else (lower + upper) / 2


def _merge(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    count = sum(c for _, c in pairs)
    return sum(v * c for v, c in pairs) / count, count


def _render(doc: _Doc, namespace: str, timestamp_ms: int) -> dict[str, Any]:
    directives = [
        {"Namespace": namespace, "Dimensions": [[k for k, _ in dims]], "Metrics": metrics}
        for dims, metrics in doc.directives
    ]
    return {
        "_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": directives},
        **doc.dims,
        **doc.values,
    }


class EmfSink:
    """Writes the registry's changes since the last flush as EMF lines on ``stream``.

    The baseline is taken when the sink is made: counts from before (module imports, other
    apps in the process) are not attributed to the first invocation.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry = REGISTRY,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = settings.metrics.namespace
        self.dimensions = frozenset(settings.metrics.dimensions)
        self.service = settings.service.name
        self._registry = registry
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._previous = read(registry)

    def flush(self) -> None:
        with self._lock:
            current = read(self._registry)
            deltas = diff(current, self._previous)
            self._previous = current
        if not deltas:
            return
        docs = documents(
            deltas,
            namespace=self.namespace,
            dimensions=self.dimensions,
            service=self.service,
            timestamp_ms=int(self._clock() * 1000),
        )
        # One write: the lines of one flush are not interleaved with other output.
        stream = self._stream or sys.stdout  # looked up late, so redirected stdout works
        stream.write("".join(json.dumps(d, separators=(",", ":")) + "\n" for d in docs))
        stream.flush()

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
from .snapshot import Hist, Key, Snapshot, State

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["MAX_METRICS", "MAX_VALUES", "EmfSink", "Layout"]

MAX_METRICS = 100
MAX_VALUES = 100
MAX_DIMENSION_VALUE = 1024
PREFIX = "aiservice_"
HTTP = "aiservice_http_"
# Labels whose value goes into the metric name instead of a dimension: input and output
# tokens change together in every request and would otherwise need two documents.
NAME_LABELS = {"aiservice_llm_tokens_total": "type"}

Dims = tuple[tuple[str, str], ...]
MAX_PLANS = 256


@dataclass(frozen=True, slots=True)
class _Target:
    """Where one registry series lands: metric name, dimensions (sorted), unit."""

    name: str
    dims: Dims
    unit: str


@dataclass(slots=True)
class _Doc:
    dims: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[Key]] = field(default_factory=dict)  # name -> series summed
    directives: list[dict[str, Any]] = field(default_factory=list)

    def fits(self, dims: Dims, names: list[str]) -> bool:
        if len(self.metrics) + len(names) > MAX_METRICS:
            return False
        if any(self.dims.get(k, v) != v for k, v in dims):
            return False
        return not any(n in self.metrics for n in names)


@dataclass(frozen=True, slots=True)
class _Plan:
    """The lines for one set of changed series: everything but the numbers pre-rendered."""

    docs: tuple[tuple[str, str, tuple[tuple[str, tuple[Key, ...]], ...]], ...]
    # per document: (directives JSON, dimension members, ((',"name":', series), ...))

    def render(self, deltas: State, timestamp_ms: int) -> str:
        lines = []
        for directives, dims, metrics in self.docs:
            parts = []
            for prefix, keys in metrics:
                value = deltas[keys[0]] if len(keys) == 1 else _total([deltas[k] for k in keys])
                parts.append(prefix)
                parts.append(_hist_json(value) if isinstance(value, Hist) else _num(value))
            values = "".join(parts)
            lines.append(
                f'{{"_aws":{{"Timestamp":{timestamp_ms},"CloudWatchMetrics":{directives}}}'
                f"{dims}{values}}}\n"
            )
        return "".join(lines)


class Layout:
    """How registry series become EMF documents (names, dimensions, units, grouping).

    Plans are memoised per set of changed series: an invocation usually changes the same
    series as the previous one, so a flush formats only the numbers.
    """

    def __init__(self, *, namespace: str, dimensions: Iterable[str], service: str) -> None:
        self.namespace = namespace
        self.allowed = frozenset(dimensions)
        self.service = service
        self._targets: dict[Key, _Target] = {}
        self._plans: dict[tuple[Key, ...], _Plan] = {}

    def render(self, deltas: State, timestamp_ms: int) -> str:
        """The EMF lines (each ending in a newline) for ``deltas``; "" when empty."""
        keys = tuple(deltas)
        plan = self._plans.get(keys)
        if plan is None:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            plan = self._plans[keys] = self._plan(deltas)
        return plan.render(deltas, timestamp_ms)

    def _plan(self, deltas: State) -> _Plan:
        groups: dict[Dims, dict[str, tuple[str, list[Key]]]] = {}
        for key, value in deltas.items():
            target = self._target(key, isinstance(value, Hist))
            group = groups.setdefault(target.dims, {})
            group.setdefault(target.name, (target.unit, []))[1].append(key)
        docs: list[_Doc] = []
        for dims in sorted(groups):
            series = sorted(groups[dims].items())
            for start in range(0, len(series), MAX_METRICS):
                chunk = series[start : start + MAX_METRICS]
                names = [n for n, _ in chunk]
                doc = next((d for d in docs if d.fits(dims, names)), None)
                if doc is None:
                    doc = _Doc()
                    docs.append(doc)
                doc.dims.update(dims)
                doc.metrics.update((n, keys) for n, (_, keys) in chunk)
                doc.directives.append(
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [[k for k, _ in dims]],
                        "Metrics": [{"Name": n, "Unit": unit} for n, (unit, _) in chunk],
                    }
                )
        return _Plan(tuple(_compile(doc) for doc in docs))

    def _target(self, key: Key, histogram: bool) -> _Target:
        target = self._targets.get(key)
        if target is not None:
            return target
        name, names, values = key
        base = name.removeprefix(PREFIX).removesuffix("_total")
        name_label = NAME_LABELS.get(name)
        dims = [("service", self.service)]
        for label, value in zip(names, values, strict=True):
            if label == name_label:
                base = f"{base}_{value}"
            elif label in self.allowed:
                dims.append(_dimension(name, label, value))
        target = self._targets[key] = _Target(base, tuple(sorted(dims)), _unit(name, histogram))
        return target


def _compile(doc: _Doc) -> tuple[str, str, tuple[tuple[str, tuple[Key, ...]], ...]]:
    dumps = json.dumps
    directives = dumps(doc.directives, separators=(",", ":"))
    dims = "".join(f",{dumps(k)}:{dumps(v)}" for k, v in doc.dims.items())
    metrics = tuple((f",{dumps(n)}:", tuple(keys)) for n, keys in doc.metrics.items())
    return directives, dims, metrics


def _dimension(metric: str, key: str, value: str) -> tuple[str, str]:
    # Status codes are summarised to their class (2xx/4xx/5xx): that is what alarms use, and
    # it bounds the number of metrics. The HTTP one is named status_class, so an upstream
    # call's "status" (ok, timeout, 4xx) can share its document.
    if key == "status" and len(value) == 3 and value.isdigit():
        return ("status_class" if metric.startswith(HTTP) else key), f"{value[0]}xx"
    return key, (value or "none")[:MAX_DIMENSION_VALUE]


def _unit(name: str, histogram: bool) -> str:
    if name.endswith("_seconds"):
        return "Seconds"
    if "_usd" in name or histogram:
        return "None"
    return "Count"


def _total(values: list[float | Hist]) -> float | Hist:
    first = values[0]
    if len(values) == 1:
        return first
    if isinstance(first, Hist):
        hists = [v for v in values if isinstance(v, Hist)]
        counts = tuple(map(sum, zip(*(h.counts for h in hists), strict=True)))
        return Hist(first.bounds, counts, sum(h.total for h in hists))
    return sum(v for v in values if not isinstance(v, Hist))


def _num(value: float) -> str:
    # 12 significant digits: a delta of float sums carries noise in the last digits
    # (8.999999999995e-06 for 9e-06); "3" rather than "3.0" for counts.
    return format(value, ".12g")


def _hist_json(value: Hist) -> str:
    filled = [(i, c) for i, c in enumerate(value.counts) if c]
    if len(filled) == 1:
        pairs = [(value.total / filled[0][1], filled[0][1])]
    else:
        pairs = [(_midpoint(value.bounds, i), c) for i, c in filled]
    while len(pairs) > MAX_VALUES:  # only with custom buckets: merge neighbours
        pairs = [_merge(pairs[i : i + 2]) for i in range(0, len(pairs), 2)]
    values = ",".join([_num(v) for v, _ in pairs])
    counts = ",".join([_num(c) for _, c in pairs])
    return f'{{"Values":[{values}],"Counts":[{counts}]}}'


def _midpoint(bounds: tuple[float, ...], i: int) -> float:
    upper = bounds[i]
    lower = bounds[i - 1] if i else min(0.0, upper)
    return lower if math.isinf(upper) else (lower + upper) / 2


def _merge(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    count = sum(c for _, c in pairs)
    return sum(v * c for v, c in pairs) / count, count


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
        self.layout = Layout(
            namespace=settings.metrics.namespace,
            dimensions=settings.metrics.dimensions,
            service=settings.service.name,
        )
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot = Snapshot(registry)

    def flush(self) -> None:
        with self._lock:
            deltas = self._snapshot.changes()
        if not deltas:
            return
        lines = self.layout.render(deltas, int(self._clock() * 1000))
        # One write: the lines of one flush are not interleaved with other output.
        stream = self._stream or sys.stdout  # looked up late, so redirected stdout works
        stream.write(lines)
        stream.flush()

"""What changed in a metrics registry since the last look: counter and histogram deltas.

The EMF sink asks at the end of every Lambda invocation, so asking must cost microseconds.
``registry.collect()`` builds a Metric and a Sample per bucket for every series (~300 µs
for aiservice's registry, a third of a warm invocation), so plain ``prometheus_client``
counters and histograms are read from their children directly, and a series is only read
in full when its cheap part moved: a counter's value, a histogram's sum (durations, never
exactly 0: an observation of 0 is reported with the next one that moves the sum). Any other
collector (custom ones, subclasses, another library layout) goes through the public
``collect()``; a test pins that both ways report the same changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter, methodcaller, sub
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.values import MutexValue

__all__ = ["Hist", "Key", "Snapshot", "State"]

Key = tuple[str, tuple[str, ...], tuple[str, ...]]
"""(sample name, label names, label values): counters by their ``_total`` sample name,
histograms by their family name."""


class Hist(NamedTuple):  # a tuple: compared in C
    bounds: tuple[float, ...]  # upper bounds, the last is +Inf
    counts: tuple[float, ...]  # per bucket (not cumulative)
    total: float  # the sum of the observations


State = dict[Key, "float | Hist"]
Seen = dict[object, "float | Hist"]  # by child value object (fast path) or by Key

# MutexValue's lock guards its read-modify-write ``inc``; reading the float attribute is
# atomic in CPython and several times cheaper than ``get()`` (a lock round trip). A read
# racing an observation sees it in this flush or the next: nothing is lost.
_get = methodcaller("get")
_raw = attrgetter("_value")


def _reader(value: object) -> Callable[[Any], float]:
    return _raw if type(value) is MutexValue else _get


class Snapshot:
    """The last values seen in ``registry``; :meth:`changes` reports and remembers moves.

    The first look happens here: what was counted before is not reported.
    ``fast=False`` reads through ``registry.collect()`` only (the reference).
    """

    def __init__(self, registry: CollectorRegistry, *, fast: bool = True) -> None:
        self._registry = registry
        self._fast = fast
        self._seen: Seen = {}
        self._plan: list[tuple[Callable[[Any, Seen, State], bool] | None, Any]] = []
        self._planned = -1
        self.changes()

    def changes(self) -> State:
        """Per series, how much it grew since the previous call (series that did not move
        are left out; one that went down restarted, so all of it counts)."""
        out: State = {}
        collectors = getattr(self._registry, "_collector_to_names", None)
        if not self._fast or not isinstance(collectors, dict):
            _read_metrics(self._registry.collect(), self._seen, out)
            return out
        if len(collectors) != self._planned:  # collectors are registered at import time
            plan = [(_FAST.get(type(c)), c) for c in list(collectors)]
            self._plan = [(fast, c) for fast, c in plan if fast is not _not_pushed]
            self._planned = len(plan)
        for fast, collector in self._plan:
            if fast is None or not fast(collector, self._seen, out):
                _read_metrics(collector.collect(), self._seen, out)
        return out


def _children(collector: Any) -> Iterable[tuple[tuple[str, ...], Any]] | None:
    names = getattr(collector, "_labelnames", None)
    if not isinstance(names, tuple):
        return None
    if not names:
        return (((), collector),)
    children = getattr(collector, "_metrics", None)
    if not isinstance(children, dict):
        return None
    return list(children.items()) if children else ()


def _counter_moved(key: Key, value: float, before: object, out: State) -> None:
    start = before if isinstance(before, float) else 0.0
    change = value - start if value >= start else value
    if change > 0:
        out[key] = change


def _fast_counter(collector: Any, seen: Seen, out: State) -> bool:
    children = _children(collector)
    if children is None:
        return False
    for values, child in children:
        cell = getattr(child, "_value", None)
        if cell is None:  # an unlabelled parent, not observable
            continue
        value = cell._value if type(cell) is MutexValue else cell.get()
        before: Any = seen.get(cell, 0.0)
        if value != before:
            seen[cell] = value
            change = value - before if value >= before else value  # lower: restarted
            if change > 0:
                out[(collector._name + "_total", collector._labelnames, values)] = change
    return True


def _fast_histogram(collector: Any, seen: Seen, out: State) -> bool:
    children = _children(collector)
    bounds = getattr(collector, "_upper_bounds", None)
    if children is None or not isinstance(bounds, list):
        return False
    for values, child in children:
        buckets, total_cell = getattr(child, "_buckets", None), getattr(child, "_sum", None)
        if buckets is None or total_cell is None:
            continue
        read = _reader(total_cell)
        total = read(total_cell)
        before = seen.get(child)
        if isinstance(before, Hist) and before.total == total:
            continue
        now = Hist(
            before.bounds if isinstance(before, Hist) else tuple(bounds),
            tuple(map(read, buckets)),
            total,
        )
        seen[child] = now
        _hist_moved((collector._name, collector._labelnames, values), now, before, out)
    return True


def _not_pushed(collector: Any, seen: Seen, out: State) -> bool:
    return True  # gauges and info: a delta of them means nothing


_FAST: dict[type, Callable[[Any, Seen, State], bool]] = {
    Counter: _fast_counter,
    Histogram: _fast_histogram,
    Gauge: _not_pushed,
    Info: _not_pushed,
}


def _hist_moved(key: Key, now: Hist, before: object, out: State) -> None:
    if (
        not isinstance(before, Hist)
        or before.bounds != now.bounds
        or sum(now.counts) < sum(before.counts)
    ):
        before = Hist(now.bounds, (0.0,) * len(now.bounds), 0.0)
    counts = tuple(map(sub, now.counts, before.counts))
    if sum(counts) > 0:
        out[key] = Hist(now.bounds, counts, now.total - before.total)


def _read_metrics(metrics: Iterable[Any], seen: Seen, out: State) -> None:
    for metric in metrics:
        if metric.type == "counter":
            for s in metric.samples:
                if s.name.endswith("_total"):
                    key = (s.name, tuple(s.labels), tuple(s.labels.values()))
                    before = seen.get(key)
                    if s.value != before:
                        seen[key] = s.value
                        _counter_moved(
                            key, s.value, before if isinstance(before, float) else None, out
                        )
        elif metric.type == "histogram":
            for key, now in _histograms(metric.name, metric.samples):
                before = seen.get(key)
                if now != before:
                    seen[key] = now
                    _hist_moved(key, now, before, out)


def _histograms(name: str, samples: Iterable[Any]) -> Iterable[tuple[Key, Hist]]:
    buckets: dict[tuple[tuple[str, ...], tuple[str, ...]], list[tuple[float, float]]] = {}
    sums: dict[tuple[tuple[str, ...], tuple[str, ...]], float] = {}
    for s in samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        series = (tuple(labels), tuple(labels.values()))
        if s.name == name + "_bucket":
            buckets.setdefault(series, []).append((float(s.labels["le"]), s.value))
        elif s.name == name + "_sum":
            sums[series] = s.value
    for (names, values), cumulative in buckets.items():
        cumulative.sort()
        totals = [c for _, c in cumulative]
        counts = [c - p for c, p in zip(totals, [0.0, *totals[:-1]], strict=True)]
        bounds = tuple(b for b, _ in cumulative)
        yield (name, names, values), Hist(bounds, tuple(counts), sums.get((names, values), 0.0))

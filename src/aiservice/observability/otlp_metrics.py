"""The ``otlp`` metrics sink: the metrics registry exported as OpenTelemetry metrics.

The same registry the scrape renders and EMF reads (:mod:`.metrics`) is converted, series
by series, into OTLP data: counters as cumulative monotonic sums, histograms as cumulative
explicit-bucket histograms with the registry's own bounds, gauges as gauges. Nothing is
re-recorded into SDK instruments, so the values are exactly those of ``/metrics``.

Exported every ``tracing.exporter.metrics_interval_seconds`` by a daemon thread, at the end
of each Lambda invocation (the bridge flushes its sink), and once more at shutdown; an
export is skipped when no counter or histogram moved since the previous one. The exporter
is ``tracing.exporter``'s OTLP/HTTP endpoint and headers (imported only for this sink).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry

from .._version import __version__
from .metrics import REGISTRY
from .otel import otlp_endpoint
from .snapshot import Snapshot

if TYPE_CHECKING:
    from ..config import Settings
    from ..runtime import Runtime

__all__ = ["OtlpSink", "metrics_data", "shared_sink", "start"]

log = logging.getLogger("aiservice.metrics")
CUMULATIVE = AggregationTemporality.CUMULATIVE


def _unit(name: str) -> str:
    return "s" if name.endswith("_seconds") else "1"


def _number(labels: dict[str, str], start: int, now: int, value: float) -> NumberDataPoint:
    return NumberDataPoint(dict(labels), start, now, int(value) if value.is_integer() else value)


def _histogram_points(samples: Iterable[Any], name: str, start: int, now: int) -> list[Any]:
    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for s in samples:
        labels = tuple((k, v) for k, v in s.labels.items() if k != "le")
        entry = series.setdefault(labels, {"buckets": [], "sum": 0.0, "count": 0.0})
        if s.name == name + "_bucket":
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name == name + "_sum":
            entry["sum"] = s.value
        elif s.name == name + "_count":
            entry["count"] = s.value
    points = []
    for labels, entry in series.items():
        cumulative = sorted(entry["buckets"])
        totals = [c for _, c in cumulative]
        counts = [int(c - p) for c, p in zip(totals, [0.0, *totals[:-1]], strict=True)]
        bounds = [b for b, _ in cumulative if not math.isinf(b)]
        used = [i for i, c in enumerate(counts) if c]
        # Prometheus keeps no min/max; OTLP always carries them: the edges of the buckets
        # that hold observations (a bound, never a made-up value).
        low = bounds[used[0] - 1] if used and used[0] > 0 else 0.0
        high = bounds[min(used[-1], len(bounds) - 1)] if used and bounds else 0.0
        points.append(
            HistogramDataPoint(
                dict(labels),
                start,
                now,
                int(entry["count"]),
                entry["sum"],
                counts,
                bounds,
                low,
                high,
            )
        )
    return points


def metrics_data(registry: CollectorRegistry, resource: Resource, start: int) -> MetricsData:
    """The registry's current values as OTLP metrics (cumulative since ``start``)."""
    now = time.time_ns()
    metrics = []
    for family in registry.collect():
        if family.type == "counter":
            points = [
                _number(s.labels, start, now, s.value)
                for s in family.samples
                if s.name.endswith("_total")
            ]
            data: Any = Sum(points, CUMULATIVE, is_monotonic=True)
        elif family.type == "histogram":
            data = Histogram(_histogram_points(family.samples, family.name, start, now), CUMULATIVE)
        elif family.type == "gauge":
            data = Gauge([_number(s.labels, start, now, s.value) for s in family.samples])
        else:
            continue  # info (build version): a resource attribute already
        if data.data_points:
            metrics.append(Metric(family.name, family.documentation, _unit(family.name), data))
    scope = ScopeMetrics(InstrumentationScope("aiservice", __version__), metrics, "")
    return MetricsData([ResourceMetrics(resource, [scope], "")])


class OtlpSink:
    """:class:`~.sinks.MetricsSink` exporting the registry over OTLP/HTTP."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry = REGISTRY,
        exporter: MetricExporter | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.resource = Resource.create(
            {
                "service.name": settings.tracing.service_name or settings.service.name,
                "service.version": __version__,
                **settings.tracing.resource_attributes,
            }
        )
        self.start_ns = time.time_ns()
        self._exporter = exporter
        self._headers: dict[str, str] = {}
        self._snapshot = Snapshot(registry)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending = True  # the first flush exports whatever was counted before

    def use_headers(self, headers: dict[str, str]) -> None:
        """Resolved ``tracing.exporter.headers`` (the exporter is built on first export)."""
        self._headers = headers

    def _client(self) -> MetricExporter:
        if self._exporter is None:
            self._exporter = OTLPMetricExporter(
                endpoint=otlp_endpoint(self.settings, "metrics"),
                headers=self._headers or None,
                timeout=self.settings.tracing.exporter.timeout_seconds,
            )
        return self._exporter

    def flush(self) -> None:
        with self._lock:
            moved = bool(self._snapshot.changes())
            if not (moved or self._pending):
                return
            self._pending = False
            data = metrics_data(self.registry, self.resource, self.start_ns)
            self._client().export(data)

    def start_periodic(self, interval: float) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.flush()
                except Exception:  # the next interval tries again
                    log.warning("OTLP metrics export failed", exc_info=True)

        self._thread = threading.Thread(target=run, name="aiservice-otlp-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        try:
            self.flush()
        except Exception:
            log.warning("final OTLP metrics export failed", exc_info=True)


_shared: OtlpSink | None = None
_shared_lock = threading.Lock()


def shared_sink(settings: Settings) -> OtlpSink:
    """The process's sink (the registry is process-wide, so is its export); the Lambda
    bridge and the app's start hook get the same one."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.settings is not settings:
            _shared = OtlpSink(settings)
        return _shared


async def start(runtime: Runtime) -> None:
    """Start hook (``metrics.sink: otlp``): resolve the headers, export periodically, and
    once more when the runtime closes."""
    settings = runtime.settings
    sink = shared_sink(settings)
    sink.use_headers(
        {k: await runtime.secrets.resolve(v) for k, v in settings.tracing.exporter.headers.items()}
    )
    sink.start_periodic(settings.tracing.exporter.metrics_interval_seconds)
    runtime.stack.callback(sink.stop)

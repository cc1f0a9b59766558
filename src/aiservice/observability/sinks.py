"""Where metrics go besides ``/metrics``: a sink chosen by ``metrics.sink``.

Every sink reads the one registry of :mod:`.metrics`; a sink only decides how the values
leave the process. Prometheus is pulled (``/metrics`` is always served), so it pushes
nothing; ``emf`` writes CloudWatch EMF lines when flushed; ``otlp`` exports OpenTelemetry
metrics (periodically and when flushed). Sinks are named by dotted path
and imported on first use, so a process that does not push imports nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..registry import Registry

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["SINKS", "MetricsSink", "make_sink", "sink_name"]


class MetricsSink(Protocol):
    """Pushes the registry's values out of the process; called at the end of each unit of
    work (a Lambda invocation). Must be cheap when nothing changed."""

    def flush(self) -> None: ...


SinkFactory = Callable[["Settings"], MetricsSink]

SINKS: Registry[SinkFactory] = Registry("metrics sink")
SINKS.register("emf", "aiservice.observability.emf:EmfSink")
SINKS.register(
    "otlp", "aiservice.observability.otlp_metrics:shared_sink", "pip install 'aiservice[otel]'"
)

# Sinks that push nothing: the registry is read at /metrics by a scraper.
PULL_ONLY = frozenset({"prometheus", "none"})


def sink_name(settings: Settings, *, on_lambda: bool) -> str:
    """The configured sink with ``auto`` resolved: ``emf`` on Lambda, else ``prometheus``.

    ``on_lambda`` comes from the caller (the Lambda bridge knows it runs on Lambda), so no
    module has to guess the platform from the environment.
    """
    metrics = settings.metrics
    if not metrics.enabled:
        return "none"
    if metrics.sink == "auto":
        return "emf" if on_lambda else "prometheus"
    return metrics.sink


def make_sink(settings: Settings, *, on_lambda: bool) -> MetricsSink | None:
    """The sink to flush, or None when metrics are only pulled (or off)."""
    name = sink_name(settings, on_lambda=on_lambda)
    if name in PULL_ONLY:
        return None
    return SINKS.get(name)(settings)

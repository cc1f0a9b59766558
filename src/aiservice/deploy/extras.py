"""The aiservice extras a deployment package must hold for its configuration.

A Lambda zip or a Cloud Functions source holds the platform's extra (``aws``, ``gcp``);
what the configuration imports at run time must travel too: ``redis`` for a Redis cache
or a ``redis-streams`` queue, OpenTelemetry when traces or OTLP metrics are exported
(``xray`` on Lambda, which adds the X-Ray propagator to ``otel``), ``qdrant`` for vector
stores. Without them the app refuses to start, or fails at its first use of the feature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .tracing import uses_otlp

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["package_extras"]


def package_extras(settings: Settings, platform: str, telemetry: str = "otel") -> list[str]:
    """``platform``'s extra, then those the configuration needs (``telemetry``: the extra
    that brings OpenTelemetry on this platform)."""
    extras = [platform]
    if settings.cache.backend == "redis" or settings.orchestrator.queue.backend == "redis-streams":
        extras.append("redis")
    if uses_otlp(settings):
        extras.append(telemetry)
    if settings.vectors.backend == "qdrant":
        extras.append("qdrant")
    return extras

"""The aiservice extras a deployment package must hold for its configuration.

A Lambda zip or a Cloud Functions source holds the platform's extra (``aws``, ``gcp``), a
container image those of its ``EXTRAS`` build argument;
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

__all__ = ["IMAGE_EXTRAS", "image_extras", "package_extras"]

IMAGE_EXTRAS = ("server", "redis", "aws", "gcp")
"""The container image's default ``EXTRAS`` build argument (``Dockerfile``)."""


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


def image_extras(settings: Settings) -> str | None:
    """The ``EXTRAS`` build argument the container image needs for this configuration, or
    ``None`` when the Dockerfile's default holds everything (tracing and vector stores are
    not in it: OpenTelemetry and qdrant-client are opt-in, the latter is large)."""
    needed = package_extras(settings, "server")
    if set(needed) <= set(IMAGE_EXTRAS):
        return None
    return ",".join([*IMAGE_EXTRAS, *(e for e in needed if e not in IMAGE_EXTRAS)])

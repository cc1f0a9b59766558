"""The ``tracing`` section: OpenTelemetry spans exported over OTLP/HTTP (``aiservice[otel]``).

``tracing.exporter`` is also where ``metrics.sink: otlp`` sends the metrics.

Off by default; while off nothing of OpenTelemetry is imported. The exporter's fields say
where spans go; the ``aws_*`` / ``gcp_*`` / ``k8s_*`` fields only change what
``aiservice render`` writes for that target (docs/observability.md#tracing).
"""

from pydantic import Field

from .factories import new_dict
from .sections import Section, defaults

__all__ = ["OtlpExporterSettings", "TracingSettings"]


class OtlpExporterSettings(Section):
    endpoint: str | None = None
    """Base URL of an OTLP/HTTP receiver; ``/v1/traces`` and ``/v1/metrics`` are appended.
    Unset: the standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``..._METRICS_ENDPOINT``
    (full URLs) or ``OTEL_EXPORTER_OTLP_ENDPOINT``, else ``http://localhost:4318`` (a
    collector beside the process: ADOT layer, sidecar)."""
    headers: dict[str, str] = Field(default_factory=new_dict)
    """Sent with every export (an API key of a hosted backend); values may be
    ``secret://`` references."""
    timeout_seconds: float = Field(10.0, gt=0, le=60)
    metrics_interval_seconds: float = Field(60.0, ge=1)
    """How often ``metrics.sink: otlp`` exports (besides each Lambda invocation's end)."""


class TracingSettings(Section):
    enabled: bool = False
    service_name: str | None = None
    """``service.name`` of the spans; defaults to ``service.name``."""
    sample_ratio: float = Field(1.0, ge=0.0, le=1.0)
    """Share of new traces recorded; a caller's sampled flag always wins (parent based)."""
    resource_attributes: dict[str, str] = Field(default_factory=new_dict)
    """Extra resource attributes (``deployment.environment.name: prod``)."""
    exporter: OtlpExporterSettings = Field(default_factory=defaults(OtlpExporterSettings))
    flush_timeout_seconds: float = Field(2.0, gt=0, le=30)
    """How long the end of a Lambda invocation (and shutdown) waits for spans to leave."""
    aws_layer_arn: str | None = None
    """Lambda: the ADOT collector layer to attach (its ARN is per region and version, see
    the ADOT docs); the function then exports to the layer's collector on localhost."""
    gcp_collector_image: str = (
        "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/"
        "otelcol-google:0.122.1"
    )
    """Cloud Run: the Google-Built OpenTelemetry Collector run as a sidecar; it sends the
    spans to Cloud Trace (``telemetry.googleapis.com``) with the service account."""
    k8s_collector_endpoint: str = "http://otel-collector.observability.svc.cluster.local:4318"
    """Kubernetes: the collector Service the pods export to when ``exporter.endpoint`` is
    unset."""

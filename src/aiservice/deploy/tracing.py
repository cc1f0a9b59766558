"""What each target needs so spans (and OTLP metrics) leave the process.

The app exports OTLP/HTTP to ``tracing.exporter.endpoint``, or, when that is unset, to
``OTEL_EXPORTER_OTLP_ENDPOINT`` as the OpenTelemetry SDK reads it. The renderers point that
variable at the collector each platform documents:

* Lambda: the ADOT collector layer runs as an extension on ``localhost:4318`` and sends the
  spans to X-Ray (active tracing gives the role the X-Ray permissions);
* Cloud Run: the Google-Built OpenTelemetry Collector as a sidecar on ``localhost:4318``,
  forwarding to ``telemetry.googleapis.com`` (Cloud Trace) with the service account;
* Kubernetes: a collector Service in the cluster (``tracing.k8s_collector_endpoint``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "GCP_COLLECTOR_SECRET",
    "LOCAL_COLLECTOR",
    "gcp_collector_config",
    "gcp_collector_container",
    "gcp_collector_volume",
    "otlp_env",
    "uses_otlp",
]

LOCAL_COLLECTOR = "http://localhost:4318"
GCP_COLLECTOR_SECRET = "otel-collector-config"
GCP_COLLECTOR_HEALTH = 13133


def uses_otlp(settings: Settings) -> bool:
    """Spans or metrics leave over OTLP under this configuration."""
    metrics = settings.metrics
    return settings.tracing.enabled or (metrics.enabled and metrics.sink == "otlp")


def otlp_env(settings: Settings, endpoint: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` for the app, unless the configuration names one."""
    if not uses_otlp(settings) or settings.tracing.exporter.endpoint:
        return {}
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}


def gcp_collector_config() -> dict[str, Any]:
    """The sidecar's configuration: OTLP in on localhost, Cloud Trace and Managed Service
    for Prometheus out, authenticated as the service's account (googleclientauth)."""
    processors = ["memory_limiter", "resourcedetection", "batch"]
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "localhost:4318"}}}},
        "processors": {
            "memory_limiter": {
                "check_interval": "1s",
                "limit_percentage": 65,
                "spike_limit_percentage": 20,
            },
            "resourcedetection": {"detectors": ["env", "gcp"], "timeout": "2s", "override": False},
            "batch": {"send_batch_size": 200, "send_batch_max_size": 200, "timeout": "5s"},
        },
        "exporters": {
            "otlphttp": {
                "encoding": "proto",
                "endpoint": "https://telemetry.googleapis.com",
                "auth": {"authenticator": "googleclientauth"},
            },
            "googlemanagedprometheus": {},
        },
        "extensions": {
            "googleclientauth": {},
            "health_check": {"endpoint": f"0.0.0.0:{GCP_COLLECTOR_HEALTH}"},
        },
        "service": {
            "extensions": ["googleclientauth", "health_check"],
            "pipelines": {
                "traces": _pipeline(processors, "otlphttp"),
                "metrics": _pipeline(processors, "googlemanagedprometheus"),
            },
        },
    }


def _pipeline(processors: list[str], exporter: str) -> dict[str, Any]:
    return {"receivers": ["otlp"], "processors": processors, "exporters": [exporter]}


def gcp_collector_container(settings: Settings) -> dict[str, Any]:
    """The collector sidecar; its configuration is mounted from Secret Manager."""
    return {
        "name": "otel-collector",
        "image": settings.tracing.gcp_collector_image,
        "args": ["--config=/etc/otelcol-google/config.yaml"],
        "resources": {"limits": {"cpu": "1", "memory": "512Mi"}},
        "startupProbe": {
            "httpGet": {"path": "/", "port": GCP_COLLECTOR_HEALTH},
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        "volumeMounts": [{"name": "otel-config", "mountPath": "/etc/otelcol-google/"}],
    }


def gcp_collector_volume() -> dict[str, Any]:
    return {
        "name": "otel-config",
        "secret": {
            "secretName": GCP_COLLECTOR_SECRET,
            "items": [{"key": "latest", "path": "config.yaml"}],
        },
    }

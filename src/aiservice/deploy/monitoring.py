"""Monitoring objects for Kubernetes: a ``PodMonitor`` (scrape ``/metrics``), a
``PrometheusRule`` and a Grafana dashboard ConfigMap.

The dashboard is the JSON shipped in ``aiservice/deploy/assets/``, read through
:mod:`importlib.resources` so an installed wheel renders it too, and goes into the
ConfigMap as it is. The rule groups are those of the rule file ``aiservice render --target
prometheus`` writes (:mod:`.alerts`, thresholds from the ``alerts:`` settings).

They are written under ``k8s/monitoring/``, out of ``kubectl apply -f k8s/``: a
``PodMonitor`` or ``PrometheusRule`` fails to apply where the Prometheus Operator's CRDs
are not installed, and that must not stop the application from deploying.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import yaml

from ..config.alerts import alerts_of
from .alerts import rules_text
from .common import dump, header, slug

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["DASHBOARD", "dashboard_json", "render_monitoring", "rule_groups"]

DASHBOARD = "grafana/aiservice.json"
# The label the Grafana sidecar (grafana Helm chart, kube-prometheus-stack) watches.
DASHBOARD_LABEL = {"grafana_dashboard": "1"}


def asset_text(name: str) -> str:
    return (
        files(__package__ or "aiservice.deploy")
        .joinpath("assets", name)
        .read_text(encoding="utf-8")
    )


def dashboard_json() -> str:
    return asset_text(DASHBOARD)


def rule_groups(settings: Settings) -> list[dict[str, Any]]:
    # Parsed from the rule file's text: the PrometheusRule holds what the file holds.
    groups: list[dict[str, Any]] = yaml.safe_load(rules_text(alerts_of(settings)))["groups"]
    return groups


def _meta(settings: Settings, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": settings.deploy.namespace,
        "labels": {
            "app.kubernetes.io/name": slug(settings),
            "app.kubernetes.io/component": "monitoring",
            **labels,
        },
    }


def prometheus_rule(settings: Settings) -> dict[str, Any]:
    # The Operator picks rules by its ruleSelector (kube-prometheus-stack: release=<name>).
    labels = dict(settings.deploy.k8s_monitoring_labels)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta(settings, slug(settings), labels),
        "spec": {"groups": rule_groups(settings)},
    }


def pod_monitor(settings: Settings) -> dict[str, Any]:
    """Scrapes the api pods' ``/metrics`` on the named container port."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": _meta(settings, slug(settings), dict(settings.deploy.k8s_monitoring_labels)),
        "spec": {
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/name": slug(settings),
                    "app.kubernetes.io/component": "api",
                }
            },
            "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
    }


def dashboard_config_map(settings: Settings) -> dict[str, Any]:
    text = dashboard_json()
    json.loads(text)  # a broken asset fails the render, not Grafana's import
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(settings, f"{slug(settings)}-dashboard", DASHBOARD_LABEL),
        "data": {"aiservice.json": text},
    }


def render_monitoring(settings: Settings) -> dict[str, str]:
    note = [
        "Apply where the Prometheus Operator and the Grafana dashboard sidecar run:",
        "  kubectl apply -f k8s/monitoring/",
    ]
    files = {
        "k8s/monitoring/prometheusrule.yaml": dump(
            prometheus_rule(settings), head=header("k8s", note)
        ),
        "k8s/monitoring/grafana-dashboard.yaml": dump(
            dashboard_config_map(settings), head=header("k8s", note)
        ),
    }
    if settings.metrics.enabled and not settings.metrics.require_auth:
        # With metrics.require_auth the scrape needs a key: the user's own PodMonitor
        # (with an authorization secret) replaces this one.
        files["k8s/monitoring/podmonitor.yaml"] = dump(
            pod_monitor(settings), head=header("k8s", note)
        )
    return files

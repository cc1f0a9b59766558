"""Kubernetes manifests (``kubectl apply -f k8s/``).

Deployment (probes on ``/health/live`` and ``/health/ready``, resources, Pod Security
"restricted", RollingUpdate 25%/25%, replicas left to the HPA), Service,
HorizontalPodAutoscaler (autoscaling/v2), PodDisruptionBudget, ConfigMap (plain
environment), optionally a ServiceAccount (Workload Identity / IRSA annotations) and, with
``deploy.redis``, a Redis for the shared cache and rate limits, and a Qdrant StatefulSet
when the vector stores use a server the deployment runs (both in :mod:`.k8s_stores`). With
``deploy.k8s_monitoring``, a PrometheusRule and a Grafana dashboard ConfigMap under
``k8s/monitoring/`` (:mod:`.monitoring`).

No Secret object is rendered: a template with placeholder values would overwrite the real
one on every ``kubectl apply -f k8s/``. Each ``secret://env/X`` reference becomes a
``secretKeyRef`` to key ``X`` of the Secret ``<service>-secrets``, created once with the
``kubectl create secret`` command printed in the Deployment's header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .bindings import bindings, runtime_note
from .common import (
    HEALTH_LIVE,
    HEALTH_READY,
    app_env,
    container_port,
    dump,
    grace_env,
    header,
    shutdown_seconds,
    slug,
)
from .extras import image_extras
from .k8s_objects import CONTAINER_SECURITY, object_meta, pod_security, secret_name, selector
from .k8s_stores import qdrant_objects, redis_objects
from .monitoring import render_monitoring
from .qdrant import app_url, serves_qdrant
from .tracing import otlp_env

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["render_k8s"]

APP_UID = 10001  # the app user of the Dockerfile
# Endpoints are removed asynchronously after SIGTERM: keep serving this long first.
PRESTOP_SECONDS = 5


def _config_map(settings: Settings) -> dict[str, Any]:
    data = app_env(settings, **otlp_env(settings, settings.tracing.k8s_collector_endpoint))
    if settings.deploy.redis and settings.cache.backend == "memory":
        data["AISERVICE_CACHE__BACKEND"] = "redis"
        data["AISERVICE_CACHE__URL"] = f"redis://{slug(settings)}-redis:6379/0"
    if serves_qdrant(settings):
        data["AISERVICE_VECTORS__URL"] = app_url(f"{slug(settings)}-qdrant")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(settings, f"{slug(settings)}-config"),
        "data": data,
    }


def secret_keys(settings: Settings) -> list[str]:
    """Keys of the Secret the pods read: one per ``secret://env/X`` reference."""
    return sorted({b.env_var for b in bindings(settings) if b.env_var})


def create_secret_command(settings: Settings) -> str:
    literals = " ".join(f"--from-literal={k}=..." for k in secret_keys(settings))
    return (
        f"kubectl create secret generic {secret_name(settings)} "
        f"--namespace {settings.deploy.namespace} {literals}"
    )


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container(settings: Settings) -> dict[str, Any]:
    d = settings.deploy
    name = slug(settings)
    memory = f"{d.memory_mb}Mi"
    port = container_port(settings)
    env: list[dict[str, Any]] = [{"name": "PORT", "value": str(port)}]
    env += [{"name": k, "value": v} for k, v in grace_env(settings).items()]
    # One key each, not envFrom: a missing key stops the pod with an event naming it.
    env += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": secret_name(settings), "key": k}}}
        for k in secret_keys(settings)
    ]
    return {
        "name": "app",
        "image": d.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port}],
        "env": env,
        "envFrom": [{"configMapRef": {"name": f"{name}-config"}}],
        "resources": {
            "requests": {"cpu": d.cpu, "memory": memory},
            "limits": {"memory": memory},
        },
        "startupProbe": _probe(HEALTH_LIVE, 2, 30),
        "livenessProbe": _probe(HEALTH_LIVE, 10, 3),
        "readinessProbe": _probe(HEALTH_READY, 5, 2),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}},
        "securityContext": dict(CONTAINER_SECURITY),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _deployment(settings: Settings) -> dict[str, Any]:
    pod: dict[str, Any] = {
        # SIGTERM comes after preStop; then the app drains for the configured grace.
        "terminationGracePeriodSeconds": shutdown_seconds(settings, before=PRESTOP_SECONDS),
        "automountServiceAccountToken": False,
        "securityContext": pod_security(APP_UID),
        "containers": [_container(settings)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    if settings.deploy.k8s_service_account:
        # Workload Identity and IRSA project their own token: the API token stays unmounted.
        pod = {"serviceAccountName": settings.deploy.k8s_service_account, **pod}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(settings, slug(settings)),
        "spec": {
            # No "replicas": the HPA owns it, and a value here resets the scale on each apply.
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(settings)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {"metadata": {"labels": selector(settings)}, "spec": pod},
        },
    }


def _service(settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(settings, slug(settings)),
        "spec": {
            "selector": selector(settings),
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def _hpa(settings: Settings) -> dict[str, Any]:
    d = settings.deploy
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(settings, slug(settings)),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": slug(settings),
            },
            "minReplicas": max(d.replicas, 1),
            "maxReplicas": max(d.max_instances, d.replicas),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }


def _pdb(settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(settings, slug(settings)),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(settings)}},
    }


def _service_account(settings: Settings) -> dict[str, Any]:
    d = settings.deploy
    meta = object_meta(settings, d.k8s_service_account or slug(settings))
    if d.k8s_service_account_annotations:
        meta["annotations"] = dict(d.k8s_service_account_annotations)
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta,
        "automountServiceAccountToken": False,
    }


def _deployment_note(settings: Settings) -> list[str]:
    note = []
    extras = image_extras(settings)
    if extras:  # tracing, vector stores: beyond the image's default extras
        note += [
            "Build the image with what this configuration imports:",
            f"  docker build --target runtime --build-arg EXTRAS={extras} -t IMAGE .",
        ]
    if secret_keys(settings):
        note += [
            "Create the Secret once, before the first apply (never commit the values):",
            f"  {create_secret_command(settings)}",
        ]
    return note + runtime_note(bindings(settings))


def render_k8s(settings: Settings) -> dict[str, str]:
    head = header("k8s")
    files = {
        "k8s/configmap.yaml": dump(_config_map(settings), head=head),
        "k8s/deployment.yaml": dump(
            _deployment(settings), head=header("k8s", _deployment_note(settings))
        ),
        "k8s/service.yaml": dump(_service(settings), head=head),
        "k8s/hpa.yaml": dump(_hpa(settings), head=head),
        "k8s/pdb.yaml": dump(_pdb(settings), head=head),
    }
    if settings.deploy.k8s_service_account:
        files["k8s/serviceaccount.yaml"] = dump(_service_account(settings), head=head)
    if settings.deploy.redis:
        files["k8s/redis.yaml"] = head + "---\n".join(dump(doc) for doc in redis_objects(settings))
    if serves_qdrant(settings):
        files["k8s/qdrant.yaml"] = head + "---\n".join(
            dump(doc) for doc in qdrant_objects(settings)
        )
    if settings.deploy.k8s_monitoring:
        files.update(render_monitoring(settings))
    return files

"""Kubernetes manifests (``kubectl apply -f k8s/``).

Deployment (probes on ``/health/live`` and ``/health/ready``, resources, non-root,
read-only root filesystem, RollingUpdate 25%/25%), Service, HorizontalPodAutoscaler
(autoscaling/v2), PodDisruptionBudget, ConfigMap (plain environment), a Secret template
(one key per ``secret://env/X`` reference) and, with ``deploy.redis``, a Redis for the
shared cache and rate limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .bindings import bindings, runtime_note
from .common import CONTAINER_PORT, HEALTH_LIVE, HEALTH_READY, app_env, dump, header, slug

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["render_k8s"]

REDIS_IMAGE = "redis:7-alpine"


def _meta(settings: Settings, name: str, component: str = "api") -> dict[str, Any]:
    return {
        "name": name,
        "namespace": settings.deploy.namespace,
        "labels": {
            "app.kubernetes.io/name": slug(settings),
            "app.kubernetes.io/component": component,
        },
    }


def _selector(settings: Settings, component: str = "api") -> dict[str, str]:
    return {"app.kubernetes.io/name": slug(settings), "app.kubernetes.io/component": component}


def _config_map(settings: Settings) -> dict[str, Any]:
    data = app_env(settings)
    if settings.deploy.redis and settings.cache.backend == "memory":
        data["AISERVICE_CACHE__BACKEND"] = "redis"
        data["AISERVICE_CACHE__URL"] = f"redis://{slug(settings)}-redis:6379/0"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(settings, f"{slug(settings)}-config"),
        "data": data,
    }


def _secret(settings: Settings) -> dict[str, Any]:
    keys = sorted({b.env_var for b in bindings(settings) if b.env_var})
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(settings, f"{slug(settings)}-secrets"),
        "type": "Opaque",
        "stringData": {k: "REPLACE_ME" for k in keys},
    }


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
    return {
        "name": "app",
        "image": d.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT}],
        "env": [{"name": "AISERVICE_SERVER__GRACEFUL_SHUTDOWN_SECONDS", "value": "20"}],
        "envFrom": [
            {"configMapRef": {"name": f"{name}-config"}},
            {"secretRef": {"name": f"{name}-secrets", "optional": True}},
        ],
        "resources": {
            "requests": {"cpu": d.cpu, "memory": memory},
            "limits": {"memory": memory},
        },
        "startupProbe": _probe(HEALTH_LIVE, 2, 30),
        "livenessProbe": _probe(HEALTH_LIVE, 10, 3),
        "readinessProbe": _probe(HEALTH_READY, 5, 2),
        # Endpoints are removed asynchronously: keep serving a few seconds after SIGTERM.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _deployment(settings: Settings) -> dict[str, Any]:
    d = settings.deploy
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(settings, slug(settings)),
        "spec": {
            "replicas": d.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": _selector(settings)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": _selector(settings)},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [_container(settings)],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def _service(settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(settings, slug(settings)),
        "spec": {
            "selector": _selector(settings),
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def _hpa(settings: Settings) -> dict[str, Any]:
    d = settings.deploy
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(settings, slug(settings)),
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
        "metadata": _meta(settings, slug(settings)),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": _selector(settings)}},
    }


def _redis(settings: Settings) -> list[dict[str, Any]]:
    name = f"{slug(settings)}-redis"
    labels = _selector(settings, "redis")
    container = {
        "name": "redis",
        "image": REDIS_IMAGE,
        "args": ["--save", "", "--appendonly", "no", "--maxmemory-policy", "allkeys-lru"],
        "ports": [{"name": "redis", "containerPort": 6379}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "readinessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 5},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 999,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(settings, name, "redis"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(settings, name, "redis"),
        "spec": {
            "selector": labels,
            "ports": [{"name": "redis", "port": 6379, "targetPort": "redis"}],
        },
    }
    return [deployment, service]


def render_k8s(settings: Settings) -> dict[str, str]:
    items = bindings(settings)
    head = header("k8s")
    files = {
        "k8s/configmap.yaml": dump(_config_map(settings), head=head),
        "k8s/secret.yaml": dump(
            _secret(settings),
            head=header(
                "k8s",
                [
                    "Template: fill in the values (or kubectl create secret); never commit them.",
                    *runtime_note(items),
                ],
            ),
        ),
        "k8s/deployment.yaml": dump(_deployment(settings), head=head),
        "k8s/service.yaml": dump(_service(settings), head=head),
        "k8s/hpa.yaml": dump(_hpa(settings), head=head),
        "k8s/pdb.yaml": dump(_pdb(settings), head=head),
    }
    if settings.deploy.redis:
        files["k8s/redis.yaml"] = head + "---\n".join(dump(doc) for doc in _redis(settings))
    return files

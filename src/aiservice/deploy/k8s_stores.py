"""The state stores :mod:`.k8s` renders beside the application: with ``deploy.redis``, a
Redis (Deployment and Service) for the shared cache and rate limits, and a Qdrant
StatefulSet with its Service when the vector stores use a server the deployment runs
(:func:`~.qdrant.serves_qdrant`).

Each is one file of ``k8s/`` holding its objects, labelled as components of the service
(:mod:`.k8s_objects`) so its selector never matches the application's pods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import slug
from .k8s_objects import CONTAINER_SECURITY, object_meta, pod_security, secret_name, selector
from .qdrant import GRPC_PORT, HTTP_PORT, QDRANT_IMAGE, QDRANT_UID, api_key_env

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["qdrant_objects", "redis_objects"]

REDIS_IMAGE = "redis:7-alpine"
REDIS_UID = 999  # the redis user of the official image


def redis_objects(settings: Settings) -> list[dict[str, Any]]:
    name = f"{slug(settings)}-redis"
    labels = selector(settings, "redis")
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
        "securityContext": dict(CONTAINER_SECURITY),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(settings, name, "redis"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(REDIS_UID),
                    "containers": [container],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(settings, name, "redis"),
        "spec": {
            "selector": labels,
            "ports": [{"name": "redis", "port": 6379, "targetPort": "redis"}],
        },
    }
    return [deployment, service]


def qdrant_objects(settings: Settings) -> list[dict[str, Any]]:
    """A one-replica StatefulSet (storage on a PersistentVolumeClaim) and its Service."""
    name = f"{slug(settings)}-qdrant"
    labels = selector(settings, "qdrant")
    container: dict[str, Any] = {
        "name": "qdrant",
        "image": QDRANT_IMAGE,
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT},
            {"name": "grpc", "containerPort": GRPC_PORT},
        ],
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"memory": "2Gi"},
        },
        # Qdrant answers its health endpoints without the API key.
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/livez", "port": "http"}, "periodSeconds": 10},
        "securityContext": dict(CONTAINER_SECURITY),
        "volumeMounts": [
            {"name": "storage", "mountPath": "/qdrant/storage"},
            {"name": "snapshots", "mountPath": "/qdrant/snapshots"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    key = api_key_env(settings)
    if key:
        ref = {"secretKeyRef": {"name": secret_name(settings), "key": key}}
        container["env"] = [{"name": "QDRANT__SERVICE__API_KEY", "valueFrom": ref}]
    stateful_set = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": object_meta(settings, name, "qdrant"),
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(QDRANT_UID),
                    "containers": [container],
                    "volumes": [
                        {"name": "snapshots", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "storage"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "10Gi"}},
                    },
                }
            ],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(settings, name, "qdrant"),
        "spec": {
            "selector": labels,
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc"},
            ],
        },
    }
    return [stateful_set, service]

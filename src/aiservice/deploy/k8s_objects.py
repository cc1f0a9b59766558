"""What every Kubernetes object that :mod:`.k8s` renders shares: metadata (name,
namespace and the ``app.kubernetes.io`` labels), the label selector of a component, the
Pod Security "restricted" contexts, and the name of the Secret the pods read.

The application objects (:mod:`.k8s`) and the state stores beside them
(:mod:`.k8s_stores`) are built from these, so they label and lock down alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import slug

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["CONTAINER_SECURITY", "object_meta", "pod_security", "secret_name", "selector"]


def object_meta(settings: Settings, name: str, component: str = "api") -> dict[str, Any]:
    return {
        "name": name,
        "namespace": settings.deploy.namespace,
        "labels": {
            "app.kubernetes.io/name": slug(settings),
            "app.kubernetes.io/component": component,
        },
    }


def selector(settings: Settings, component: str = "api") -> dict[str, str]:
    return {"app.kubernetes.io/name": slug(settings), "app.kubernetes.io/component": component}


def secret_name(settings: Settings) -> str:
    return f"{slug(settings)}-secrets"


def pod_security(uid: int) -> dict[str, Any]:
    """Pod-level part of the Pod Security "restricted" profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}

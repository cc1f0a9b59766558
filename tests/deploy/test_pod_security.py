"""Every pod the k8s target renders passes the Pod Security Standards "restricted" profile.

The rules are those of https://kubernetes.io/docs/concepts/security/pod-security-standards/
(baseline + restricted, v1.30), checked as the admission controller does: a container
field wins over the pod's ``securityContext``.
"""

from __future__ import annotations

from typing import Any

import pytest

from aiservice.config import Settings
from aiservice.deploy import render

from .conftest import SECRETS_CONFIG
from .test_render import docs

ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
ALLOWED_CAPS = {"NET_BIND_SERVICE"}
SECCOMP = {"RuntimeDefault", "Localhost"}


def violations(pod: dict[str, Any]) -> list[str]:
    """Restricted-profile violations of one pod spec (empty when it passes)."""
    out: list[str] = []
    psc = pod.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            out.append(f"{flag} must not be true")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            out.append(f"volume {volume['name']}: type {kinds} not allowed")
    if psc.get("runAsUser") == 0:
        out.append("pod runAsUser 0")
    containers = pod.get("initContainers", []) + pod["containers"]
    for c in containers:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            out.append(f"{name}: must drop ALL capabilities")
        if not set(caps.get("add", [])) <= ALLOWED_CAPS:
            out.append(f"{name}: adds capabilities {caps['add']}")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            out.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in SECCOMP:
            out.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            out.append(f"{name}: hostPort")
        # Not part of "restricted", but every rendered container can run with it.
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{name}: readOnlyRootFilesystem should be true")
    return out


def pods(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path, text in render(settings, "k8s").items():
        for doc in docs(text):
            template = doc.get("spec", {}).get("template")
            if template is not None:
                out.append((f"{path}:{doc['metadata']['name']}", template["spec"]))
    return out


CONFIGS = {
    "defaults": {},
    "secrets": SECRETS_CONFIG,
    "service-account": {
        "deploy": {
            "k8s_service_account": "gw",
            "k8s_service_account_annotations": {
                "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"
            },
        }
    },
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_rendered_pod_is_restricted(name: str) -> None:
    found = pods(Settings(**CONFIGS[name]))
    assert {where.split(":")[0] for where, _ in found} == {"k8s/deployment.yaml", "k8s/redis.yaml"}
    for where, pod in found:
        assert violations(pod) == [], where


def test_the_checker_catches_what_redis_used_to_lack() -> None:
    """The pre-fix Redis pod: no pod securityContext, so no seccomp profile."""
    pod = {
        "containers": [
            {
                "name": "redis",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "runAsUser": 999,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/"}}],
    }
    assert violations(pod) == [
        "volume h: type {'hostPath'} not allowed",
        "redis: seccompProfile must be RuntimeDefault or Localhost",
    ]

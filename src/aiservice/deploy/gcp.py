"""Google Cloud: ``gcp/service.yaml`` + ``gcp/cloudbuild.yaml`` (Cloud Run) and the Cloud
Functions gen2 deploy script with its ``--env-vars-file``.

Secrets: ``secret://env/X`` and ``secret://gcp-sm/S`` become Secret Manager references that
Cloud Run / Cloud Functions inject as environment variables (``secretKeyRef`` in the
service, ``--set-secrets`` for functions), so the app reads no Secret Manager at startup.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

from ..secrets.gcp import version_name
from .bindings import Binding, bindings, dashed, runtime_note
from .common import (
    CONTAINER_PORT,
    HEALTH_LIVE,
    app_env,
    dump,
    gcp_image,
    gcp_memory,
    header,
    slug,
)

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["render_cloudrun", "render_function"]

OLLAMA_IMAGE = "ollama/ollama:latest"
OLLAMA_PORT = 11434
MODELS_PATH = "/models"
NATIVE = frozenset({"gcp-sm"})


def secret_source(binding: Binding, project: str) -> tuple[str, str]:
    """(Secret Manager secret, version) that fills the binding's variable."""
    if binding.ref.scheme == "env":
        return dashed(binding.ref.name), "latest"
    parts = version_name(binding.ref.name, project).split("/")
    return parts[3], parts[5]


def _secret_env(settings: Settings, items: list[Binding]) -> list[dict[str, Any]]:
    out = []
    for b in items:
        if b.env_var:
            name, version = secret_source(b, settings.deploy.gcp_project)
            ref = {"secretKeyRef": {"name": name, "key": version}}
            out.append({"name": b.env_var, "valueFrom": ref})
    return out


def _ollama(settings: Settings) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "ollama",
        "image": OLLAMA_IMAGE,
        "env": [
            {"name": "OLLAMA_HOST", "value": f"127.0.0.1:{OLLAMA_PORT}"},
            {"name": "OLLAMA_MODELS", "value": MODELS_PATH},
            {"name": "OLLAMA_KEEP_ALIVE", "value": "-1"},
        ],
        "resources": {"limits": {"cpu": "4", "memory": "16Gi"}},
        # The app starts only once Ollama answers (container-dependencies below).
        "startupProbe": {
            "tcpSocket": {"port": OLLAMA_PORT},
            "periodSeconds": 2,
            "failureThreshold": 60,
        },
    }
    if settings.deploy.models_bucket:
        container["volumeMounts"] = [{"name": "models", "mountPath": MODELS_PATH}]
    return container


def _app_container(settings: Settings, items: list[Binding]) -> dict[str, Any]:
    d = settings.deploy
    extra = {"AISERVICE_SERVER__GRACEFUL_SHUTDOWN_SECONDS": "8"}
    env = [{"name": k, "value": v} for k, v in app_env(settings, **extra).items()]
    return {
        "name": "app",
        "image": gcp_image(settings),
        "ports": [{"name": "http1", "containerPort": CONTAINER_PORT}],
        "env": env + _secret_env(settings, items),
        "resources": {"limits": {"cpu": d.cpu, "memory": gcp_memory(settings)}},
        "startupProbe": {
            "httpGet": {"path": HEALTH_LIVE, "port": CONTAINER_PORT},
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        "livenessProbe": {
            "httpGet": {"path": HEALTH_LIVE, "port": CONTAINER_PORT},
            "periodSeconds": 30,
        },
    }


def _service(settings: Settings, items: list[Binding]) -> dict[str, Any]:
    d = settings.deploy
    annotations = {
        "autoscaling.knative.dev/minScale": str(d.min_instances),
        "autoscaling.knative.dev/maxScale": str(d.max_instances),
        "run.googleapis.com/startup-cpu-boost": "true",
        "run.googleapis.com/execution-environment": "gen2",
    }
    containers = [_app_container(settings, items)]
    spec: dict[str, Any] = {
        "containerConcurrency": d.concurrency,
        "timeoutSeconds": d.timeout_seconds,
        "serviceAccountName": f"{slug(settings)}@{d.gcp_project}.iam.gserviceaccount.com",
        "containers": containers,
    }
    if d.ollama_sidecar:
        containers.append(_ollama(settings))
        annotations["run.googleapis.com/container-dependencies"] = json.dumps({"app": ["ollama"]})
    if d.models_bucket:
        spec["volumes"] = [
            {
                "name": "models",
                "csi": {
                    "driver": "gcsfuse.run.googleapis.com",
                    "volumeAttributes": {"bucketName": d.models_bucket},
                },
            }
        ]
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": slug(settings),
            "labels": {"cloud.googleapis.com/location": d.gcp_region},
            "annotations": {"run.googleapis.com/ingress": "all"},
        },
        "spec": {"template": {"metadata": {"annotations": annotations}, "spec": spec}},
    }


def _cloudbuild(settings: Settings) -> dict[str, Any]:
    return {
        "steps": [
            {
                "name": "gcr.io/cloud-builders/docker",
                "args": [
                    "build",
                    "--platform=linux/amd64",
                    "--target=runtime",
                    "-t",
                    "${_IMAGE}",
                    ".",
                ],
            }
        ],
        "images": ["${_IMAGE}"],
        "substitutions": {"_IMAGE": gcp_image(settings)},
        "options": {"logging": "CLOUD_LOGGING_ONLY"},
    }


def render_cloudrun(settings: Settings) -> dict[str, str]:
    items = bindings(settings, NATIVE)
    region = settings.deploy.gcp_region
    note = [
        f"Deploy: gcloud run services replace gcp/service.yaml --region {region}",
        *runtime_note(items),
    ]
    build_note = [
        "Build and push (linux/amd64): gcloud builds submit --config gcp/cloudbuild.yaml ."
    ]
    return {
        "gcp/service.yaml": dump(_service(settings, items), head=header("cloudrun", note)),
        "gcp/cloudbuild.yaml": dump(_cloudbuild(settings), head=header("cloudrun", build_note)),
    }


STAGE_SOURCE = """\
# Cloud Functions builds main.py + requirements.txt: stage them with the aiservice wheel.
SRC=.build/function
rm -rf "$SRC" && mkdir -p "$SRC"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$SRC" .
cp adapters/gcp_functions.py "$SRC/main.py"
[ -f aiservice.yaml ] && cp aiservice.yaml "$SRC/"
[ -d config ] && cp -r config "$SRC/"
echo "./$(cd "$SRC" && ls aiservice-*.whl)[gcp]" > "$SRC/requirements.txt"
"""


def _deploy(settings: Settings, items: list[Binding], name: str, trigger: list[str]) -> str:
    d = settings.deploy
    secrets = ",".join(
        f"{b.env_var}={':'.join(secret_source(b, d.gcp_project))}" for b in items if b.env_var
    )
    args = [
        f"gcloud functions deploy {name}",
        "--gen2",
        "--runtime=python312",
        f"--region={d.gcp_region}",
        f"--project={d.gcp_project}",
        '--source="$SRC"',
        *trigger,
        f"--memory={gcp_memory(settings)}",
        f"--cpu={d.cpu}",
        f"--timeout={d.timeout_seconds}s",
        f"--concurrency={d.concurrency}",
        f"--min-instances={d.min_instances}",
        f"--max-instances={d.max_instances}",
        "--env-vars-file=gcp/function.env.yaml",
    ]
    if secrets:
        args.append(f"--set-secrets={shlex.quote(secrets)}")
    return " \\\n  ".join(args)


def render_function(settings: Settings) -> dict[str, str]:
    items = bindings(settings, NATIVE)
    name = slug(settings)
    # functions-framework serves ASGI targets only in ASGI mode.
    env = {"FUNCTION_USE_ASGI": "true", **app_env(settings)}
    http = _deploy(settings, items, name, ["--entry-point=handle", "--trigger-http"])
    worker = _deploy(
        settings,
        items,
        f"{name}-worker",
        ["--entry-point=handle_pubsub", f"--trigger-topic={name}-work"],
    )
    script = "\n".join(
        [
            "#!/usr/bin/env bash",
            header("function", runtime_note(items)).rstrip("\n"),
            "# Run from the repository root. DEPLOY_WORKER=1 also deploys the Pub/Sub worker.",
            "set -euo pipefail",
            STAGE_SOURCE,
            http,
            'if [ "${DEPLOY_WORKER:-0}" = 1 ]; then',
            worker,
            "fi",
            "",
        ]
    )
    return {
        "gcp/function.env.yaml": dump(env, head=header("function")),
        "gcp/deploy-function.sh": script,
    }

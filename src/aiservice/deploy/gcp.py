"""Google Cloud: ``gcp/service.yaml`` + ``gcp/cloudbuild.yaml`` (Cloud Run) and the Cloud
Functions gen2 deploy script with its ``--env-vars-file``.

Secrets: ``secret://env/X`` and ``secret://gcp-sm/S`` become Secret Manager references that
Cloud Run / Cloud Functions inject as environment variables (``secretKeyRef`` in the
service, ``--set-secrets`` for functions), so the app reads no Secret Manager at startup.

Access: ``deploy.public`` (default: public exactly when the app checks API keys) disables
the invoker IAM check (``run.googleapis.com/invoker-iam-disabled``,
``--allow-unauthenticated``); otherwise callers need ``roles/run.invoker``, which OpenAI
SDK clients cannot present.

Async executions on Cloud Tasks: both targets also render ``gcp/tasks-queue.sh`` and its
environment (:mod:`aiservice.deploy.cloudtasks`).
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

from ..platforms.serve import FLUSH_SECONDS
from ..secrets.gcp import version_name
from .bindings import Binding, bindings, dashed, runtime_note
from .cloudtasks import service_account, tasks_env, tasks_script
from .common import (
    HEALTH_LIVE,
    app_env,
    container_port,
    dump,
    flows_dir,
    gcp_image,
    gcp_memory,
    grace_env,
    header,
    is_public,
    slug,
)
from .extras import image_extras, package_extras
from .tracing import (
    GCP_COLLECTOR_SECRET,
    LOCAL_COLLECTOR,
    gcp_collector_config,
    gcp_collector_container,
    gcp_collector_volume,
    otlp_env,
)

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["render_cloudrun", "render_function"]

OLLAMA_IMAGE = "ollama/ollama:latest"
OLLAMA_PORT = 11434
MODELS_PATH = "/models"
NATIVE = frozenset({"gcp-sm"})
# Cloud Run sends SIGKILL 10 s after SIGTERM: the drain, the final flush and exit fit in it.
SIGTERM_WINDOW = 10
MAX_GRACE = SIGTERM_WINDOW - FLUSH_SECONDS - 1


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
    # Cloud Run sets PORT itself (from containerPort): it may not be set here.
    extra = {**grace_env(settings, cap=MAX_GRACE), **tasks_env(settings)}
    extra.update(otlp_env(settings, LOCAL_COLLECTOR))
    env = [{"name": k, "value": v} for k, v in app_env(settings, **extra).items()]
    port = container_port(settings)
    return {
        "name": "app",
        "image": gcp_image(settings),
        "ports": [{"name": "http1", "containerPort": port}],
        "env": env + _secret_env(settings, items),
        "resources": {"limits": {"cpu": d.cpu, "memory": gcp_memory(settings)}},
        "startupProbe": {
            "httpGet": {"path": HEALTH_LIVE, "port": port},
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        "livenessProbe": {
            "httpGet": {"path": HEALTH_LIVE, "port": port},
            "periodSeconds": 30,
        },
    }


def _network(settings: Settings) -> dict[str, str]:
    """Revision annotations for VPC egress and Cloud SQL connections."""
    d = settings.deploy
    out: dict[str, str] = {}
    if d.vpc_connector:
        out["run.googleapis.com/vpc-access-connector"] = d.vpc_connector
    if d.vpc_network:
        interface = {"network": d.vpc_network}
        if d.vpc_subnetwork:
            interface["subnetwork"] = d.vpc_subnetwork
        out["run.googleapis.com/network-interfaces"] = json.dumps([interface])
    if d.vpc_connector or d.vpc_network:
        out["run.googleapis.com/vpc-access-egress"] = d.vpc_egress
    if d.cloudsql_instances:
        out["run.googleapis.com/cloudsql-instances"] = ",".join(d.cloudsql_instances)
    return out


def _service(settings: Settings, items: list[Binding]) -> dict[str, Any]:
    d = settings.deploy
    annotations = {
        "autoscaling.knative.dev/minScale": str(d.min_instances),
        "autoscaling.knative.dev/maxScale": str(d.max_instances),
        "run.googleapis.com/startup-cpu-boost": "true",
        "run.googleapis.com/execution-environment": "gen2",
        **_network(settings),
    }
    containers = [_app_container(settings, items)]
    spec: dict[str, Any] = {
        "containerConcurrency": d.concurrency,
        "timeoutSeconds": d.timeout_seconds,
        "serviceAccountName": service_account(settings),
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
    if otlp_env(settings, LOCAL_COLLECTOR):  # the app starts once the collector is up
        containers.append(gcp_collector_container(settings))
        spec.setdefault("volumes", []).append(gcp_collector_volume())
        key = "run.googleapis.com/container-dependencies"
        depends = json.loads(annotations.get(key, "{}"))
        annotations[key] = json.dumps({"app": [*depends.get("app", []), "otel-collector"]})
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": slug(settings),
            "labels": {"cloud.googleapis.com/location": d.gcp_region},
            "annotations": {
                "run.googleapis.com/ingress": "all",
                # Rendered either way: `services replace` must also switch the check back on.
                "run.googleapis.com/invoker-iam-disabled": str(is_public(settings)).lower(),
            },
        },
        "spec": {"template": {"metadata": {"annotations": annotations}, "spec": spec}},
    }


def _cloudbuild(settings: Settings) -> dict[str, Any]:
    extras = image_extras(settings)  # tracing, vector stores: beyond the image's default
    build_arg = [f"--build-arg=EXTRAS={extras}"] if extras else []
    return {
        "steps": [
            {
                "name": "gcr.io/cloud-builders/docker",
                "args": [
                    "build",
                    "--platform=linux/amd64",
                    "--target=runtime",
                    *build_arg,
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


def _access_note(settings: Settings) -> list[str]:
    if is_public(settings):
        return ["Public: anyone may call it; the app's API keys authenticate (deploy.public)."]
    return [
        "Private (deploy.public: false): callers need roles/run.invoker and a Google ID token.",
    ]


def _grace_note(settings: Settings) -> list[str]:
    if settings.server.graceful_shutdown_seconds <= MAX_GRACE:
        return []
    return [
        f"server.graceful_shutdown_seconds is capped at {MAX_GRACE:g}: Cloud Run kills "
        f"{SIGTERM_WINDOW} s after SIGTERM."
    ]


def _storage_note(settings: Settings) -> list[str]:
    """Uploaded files in GCS: the runtime service account must be able to write them."""
    v = settings.vectors
    if not v.backend or v.files.backend != "gcs" or not v.files.bucket:
        return []
    return [
        "Uploaded files go to GCS; grant the service account access to the bucket once:",
        f"  gcloud storage buckets add-iam-policy-binding gs://{v.files.bucket} "
        f"--member=serviceAccount:{service_account(settings)} --role=roles/storage.objectAdmin",
    ]


def render_cloudrun(settings: Settings) -> dict[str, str]:
    items = bindings(settings, NATIVE)
    region = settings.deploy.gcp_region
    note = [
        f"Deploy: gcloud run services replace gcp/service.yaml --region {region}",
        *_access_note(settings),
        *_grace_note(settings),
        *_storage_note(settings),
        *runtime_note(items),
    ]
    build_note = [
        "Build and push (linux/amd64): gcloud builds submit --config gcp/cloudbuild.yaml ."
    ]
    files = {
        "gcp/service.yaml": dump(_service(settings, items), head=header("cloudrun", note)),
        "gcp/cloudbuild.yaml": dump(_cloudbuild(settings), head=header("cloudrun", build_note)),
    }
    if otlp_env(settings, LOCAL_COLLECTOR):
        collector_note = [
            "The OpenTelemetry Collector sidecar's configuration; store it once:",
            f"  gcloud secrets create {GCP_COLLECTOR_SECRET} --data-file=gcp/otel-collector.yaml",
            "The service account needs roles/secretmanager.secretAccessor on it,",
            "roles/cloudtrace.agent and roles/monitoring.metricWriter.",
        ]
        files["gcp/otel-collector.yaml"] = dump(
            gcp_collector_config(), head=header("cloudrun", collector_note)
        )
    invoker = (
        f"gcloud run services add-iam-policy-binding {slug(settings)} "
        f"--region={region} --project={settings.deploy.gcp_project} "
        "--member={member} --role=roles/run.invoker"
    )
    script = tasks_script(settings, "cloudrun", invoker)
    if script is not None:
        files["gcp/tasks-queue.sh"] = script
    return files


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

# gcloud functions deploy spells the egress setting differently from Cloud Run.
EGRESS = {"private-ranges-only": "private-ranges-only", "all-traffic": "all"}


def _stage(settings: Settings) -> str:
    # The extras the configuration needs (a Redis cache, tracing, Qdrant) beside gcp.
    stage = STAGE_SOURCE.replace("[gcp]", f"[{','.join(package_extras(settings, 'gcp'))}]")
    folder = flows_dir(settings)
    if folder is None:
        return stage
    # Beside aiservice.yaml, where the app looks for a relative flows_dir.
    copy = f'mkdir -p "$SRC/{folder}" && cp -r {shlex.quote(folder)}/. "$SRC/{folder}/"\n'
    return stage + copy


def _deploy(settings: Settings, items: list[Binding], name: str) -> str:
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
        "--entry-point=handle",
        "--trigger-http",
        "--allow-unauthenticated" if is_public(settings) else "--no-allow-unauthenticated",
        f"--memory={gcp_memory(settings)}",
        f"--cpu={d.cpu}",
        f"--timeout={d.timeout_seconds}s",
        f"--concurrency={d.concurrency}",
        f"--min-instances={d.min_instances}",
        f"--max-instances={d.max_instances}",
        "--env-vars-file=gcp/function.env.yaml",
    ]
    if d.vpc_connector:
        args += [f"--vpc-connector={d.vpc_connector}", f"--egress-settings={EGRESS[d.vpc_egress]}"]
    if secrets:
        args.append(f"--set-secrets={shlex.quote(secrets)}")
    return " \\\n  ".join(args)


def _function_note(settings: Settings, items: list[Binding]) -> list[str]:
    d = settings.deploy
    note = ["Run from the repository root."]
    if d.vpc_network or d.cloudsql_instances:
        note.append(
            "deploy.vpc_network / cloudsql_instances apply to Cloud Run only: functions reach "
            "a VPC (and Cloud SQL's private IP) through deploy.vpc_connector."
        )
    return note + runtime_note(items)


def render_function(settings: Settings) -> dict[str, str]:
    items = bindings(settings, NATIVE)
    # functions-framework serves ASGI targets only in ASGI mode.
    env = {"FUNCTION_USE_ASGI": "true", **app_env(settings, **tasks_env(settings))}
    script = "\n".join(
        [
            "#!/usr/bin/env bash",
            header("function", _function_note(settings, items)).rstrip("\n"),
            "set -euo pipefail",
            _stage(settings),
            _deploy(settings, items, slug(settings)),
            "",
        ]
    )
    out = {
        "gcp/function.env.yaml": dump(env, head=header("function")),
        "gcp/deploy-function.sh": script,
    }
    d = settings.deploy
    invoker = (
        f"gcloud functions add-invoker-policy-binding {slug(settings)} "
        f"--region={d.gcp_region} --project={d.gcp_project} --member={{member}}"
    )
    tasks = tasks_script(settings, "function", invoker)
    if tasks is not None:
        out["gcp/tasks-queue.sh"] = tasks
    return out

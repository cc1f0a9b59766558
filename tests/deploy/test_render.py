"""`aiservice render`: committed manifests match the defaults; secrets map per platform."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiservice.cli import main
from aiservice.config import Settings
from aiservice.deploy import TARGETS, render

from .conftest import REPO, SECRETS_CONFIG

TARGET_NAMES = ["lambda", "cloudrun", "function", "k8s", "compose", "prometheus"]


def docs(text: str) -> list[Any]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def test_every_target_is_registered() -> None:
    assert TARGETS.names() == sorted(TARGET_NAMES)


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_committed_manifests_are_the_rendered_defaults(target: str, settings_from: Any) -> None:
    """Editing a manifest by hand (or changing a renderer) without re-rendering fails here."""
    files = render(settings_from(), target)
    for relative, text in files.items():
        committed = REPO / relative
        assert committed.is_file(), f"{relative} is missing: run aiservice render -t {target} -o ."
        assert committed.read_text() == text, (
            f"{relative} drifted from `aiservice render --target {target}`; re-render it"
        )


def test_render_check_reports_drift(tmp_path: Path, capsys: Any) -> None:
    assert main(["render", "-t", "compose", "-o", str(tmp_path)]) == 0
    assert main(["render", "-t", "compose", "-o", str(tmp_path), "--check"]) == 0
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    assert main(["render", "-t", "compose", "-o", str(tmp_path), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err


def test_render_to_stdout_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "aiservice.yaml").write_text("deploy: {image: 'reg.example/ai:1.2'}\n")
    out = subprocess.run(
        [sys.executable, "-m", "aiservice", "render", "--target", "k8s"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "# ===== k8s/deployment.yaml" in out
    assert "image: reg.example/ai:1.2" in out


def test_unknown_target_is_a_usage_error(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["render", "--target", "heroku"])
    assert exc.value.code == 2


def test_profile_values_and_name_reach_the_manifests(settings_from: Any, tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "prod.yaml").write_text(
        "deploy: {memory_mb: 2048, timeout_seconds: 600, max_instances: 40}\n"
    )
    settings = settings_from({}, profile="prod")
    service = docs(render(settings, "cloudrun")["gcp/service.yaml"])[0]
    template = service["spec"]["template"]
    app = template["spec"]["containers"][0]
    assert app["resources"]["limits"]["memory"] == "2048Mi"
    assert template["spec"]["timeoutSeconds"] == 600
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/maxScale"] == "40"
    assert {"name": "AISERVICE_ENV", "value": "prod"} in app["env"]
    sls = docs(render(settings, "lambda")["serverless.yml"])[0]
    assert sls["provider"]["environment"]["AISERVICE_ENV"] == "prod"
    assert sls["functions"]["worker"]["timeout"] == 600


def test_lambda_secrets_get_exactly_their_arns() -> None:
    sls = docs(render(Settings(**SECRETS_CONFIG), "lambda")["serverless.yml"])[0]
    statements = {
        s["Action"][0]: s["Resource"] for s in sls["provider"]["iam"]["role"]["statements"]
    }
    (sm,) = statements["secretsmanager:GetSecretValue"]
    assert sm["Fn::Join"][1][-1] == ":secret:prod/anthropic-??????"  # #key is not in the ARN
    (ssm,) = statements["ssm:GetParameter"]
    assert ssm["Fn::Join"][1][-1] == ":parameter/prod/gemini"
    assert not any("*" in str(r) for r in statements.values())
    env = sls["provider"]["environment"]
    assert env["CLIENT_KEY"] == "${ssm:/${self:service}/${sls:stage}/CLIENT_KEY}"


def test_cloud_run_injects_secret_manager_values_as_variables() -> None:
    service = docs(render(Settings(**SECRETS_CONFIG), "cloudrun")["gcp/service.yaml"])[0]
    env = {e["name"]: e for e in service["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CLIENT_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "client-key", "key": "latest"}
    # The variable overrides the config key, so no Secret Manager call happens at startup.
    ref = env["AISERVICE_PROVIDERS__OPENAI__API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "openai-key", "key": "latest"}


def test_cloud_run_sidecar_and_models_volume() -> None:
    service = docs(render(Settings(**SECRETS_CONFIG), "cloudrun")["gcp/service.yaml"])[0]
    template = service["spec"]["template"]
    app, ollama = template["spec"]["containers"]
    assert template["metadata"]["annotations"]["run.googleapis.com/container-dependencies"] == (
        '{"app": ["ollama"]}'
    )
    assert "startupProbe" in ollama and "ports" not in ollama  # only the app gets ingress
    assert ollama["volumeMounts"] == [{"name": "models", "mountPath": "/models"}]
    (volume,) = template["spec"]["volumes"]
    assert volume["csi"]["volumeAttributes"] == {"bucketName": "acme-models"}
    assert app["startupProbe"]["httpGet"]["path"] == "/health/live"


def test_function_deploy_command_sets_secrets() -> None:
    script = render(Settings(**SECRETS_CONFIG), "function")["gcp/deploy-function.sh"]
    assert "gcloud functions deploy ai-gw \\\n  --gen2" in script
    pairs = "CLIENT_KEY=client-key:latest,AISERVICE_PROVIDERS__OPENAI__API_KEY=openai-key:latest"
    assert script.count(f"--set-secrets={pairs}") == 1
    assert "--entry-point=handle \\\n  --trigger-http" in script
    # Nothing publishes to a Pub/Sub topic yet: no worker function is deployed.
    assert script.count("gcloud functions deploy") == 1
    assert "pubsub" not in script.lower() and "DEPLOY_WORKER" not in script
    env = yaml.safe_load(render(Settings(), "function")["gcp/function.env.yaml"])
    assert env == {"FUNCTION_USE_ASGI": "true"}


def test_k8s_ships_no_secret_and_references_the_one_created_by_kubectl() -> None:
    """An applyable Secret with placeholders would overwrite the real one on each apply."""
    files = render(Settings(**SECRETS_CONFIG), "k8s")
    kinds = [d["kind"] for text in files.values() for d in docs(text)]
    assert "Secret" not in kinds and "k8s/secret.yaml" not in files
    deployment_text = files["k8s/deployment.yaml"]
    (container,) = docs(deployment_text)[0]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CLIENT_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "ai-gw-secrets", "key": "CLIENT_KEY"}
    }
    assert all("secretRef" not in source for source in container["envFrom"])
    command = "kubectl create secret generic ai-gw-secrets --namespace default"
    assert f"#   {command} --from-literal=CLIENT_KEY=..." in deployment_text
    assert "secret://gcp-sm/openai-key" in deployment_text  # listed as runtime-resolved
    assert not (REPO / "k8s" / "secret.yaml").exists()
    compose = docs(render(Settings(**SECRETS_CONFIG), "compose")["docker-compose.yml"])[0]
    assert compose["services"]["app"]["environment"]["CLIENT_KEY"].startswith("${CLIENT_KEY:?")


def test_k8s_deployment_contract() -> None:
    files = render(Settings(), "k8s")
    deployment = docs(files["k8s/deployment.yaml"])[0]
    spec = deployment["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    (container,) = spec["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    hpa = docs(files["k8s/hpa.yaml"])[0]
    assert hpa["apiVersion"] == "autoscaling/v2"
    config = docs(files["k8s/configmap.yaml"])[0]["data"]
    assert config["AISERVICE_CACHE__URL"] == "redis://aiservice-redis:6379/0"
    no_redis = render(Settings(deploy={"redis": False}), "k8s")
    assert "k8s/redis.yaml" not in no_redis


def test_lambda_schedules_are_rendered_with_their_entry_name() -> None:
    settings = Settings(
        aws_lambda={"events": {"nightly": {"schedule": "cron(0 3 * * ? *)", "path": "/x"}}}
    )
    sls = docs(render(settings, "lambda")["serverless.yml"])[0]
    schedule = sls["functions"]["worker"]["events"][1]["schedule"]
    assert schedule["rate"] == ["cron(0 3 * * ? *)"]
    assert schedule["input"]["detail"] == {"schedule": "nightly"}
    assert schedule["input"]["detail-type"] == "Scheduled Event"

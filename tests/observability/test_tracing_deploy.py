"""``aiservice render`` with tracing on: each target gets the collector its platform
documents and the app's OTLP endpoint pointed at it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiservice.config import Settings
from aiservice.deploy import render, write
from tests.deploy.test_validate import BIN, app_manifests, package, serverless

__all__ = ["serverless"]  # the fixture, imported for the packaging test

LAYER = "arn:aws:lambda:us-east-1:901920570463:layer:aws-otel-collector-amd64-ver-0-115-0:3"


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def traced(**tracing: Any) -> Settings:
    return Settings(tracing={"enabled": True, **tracing}, deploy={"gcp_project": "acme"})


def test_lambda_gets_the_adot_collector_layer_and_active_tracing() -> None:
    [doc] = docs(render(traced(aws_layer_arn=LAYER), "lambda")["serverless.yml"])
    provider = doc["provider"]
    assert provider["tracing"] == {"lambda": True}
    assert provider["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4318"
    functions = doc["functions"]
    assert all(LAYER in f["layers"] for f in functions.values())
    assert len(functions["stream"]["layers"]) == 2  # the Web Adapter's layer is kept


def test_lambda_without_a_layer_says_what_is_missing() -> None:
    text = render(traced(), "lambda")["serverless.yml"]
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    assert "tracing.aws_layer_arn" in header
    [doc] = docs(text)
    assert "layers" not in doc["functions"]["api"]


def test_an_explicit_endpoint_or_tracing_off_renders_no_collector() -> None:
    explicit = traced(aws_layer_arn=LAYER, exporter={"endpoint": "https://otlp.example.com"})
    off = Settings(deploy={"gcp_project": "acme"})
    for settings in (explicit, off):
        [doc] = docs(render(settings, "lambda")["serverless.yml"])
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in doc["provider"]["environment"]
        assert "layers" not in doc["functions"]["api"]
        files = render(settings, "cloudrun")
        assert "gcp/otel-collector.yaml" not in files
        [service] = docs(files["gcp/service.yaml"])
        assert len(service["spec"]["template"]["spec"]["containers"]) == 1
    assert docs(render(off, "lambda")["serverless.yml"])[0]["provider"].get("tracing") is None


def test_cloud_run_gets_the_collector_sidecar_sending_to_cloud_trace() -> None:
    settings = Settings(
        tracing={"enabled": True},
        deploy={"gcp_project": "acme", "ollama_sidecar": True, "models_bucket": "m"},
    )
    files = render(settings, "cloudrun")
    [service] = docs(files["gcp/service.yaml"])
    template = service["spec"]["template"]
    app, *sidecars = template["spec"]["containers"]
    assert {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://localhost:4318"} in app["env"]
    [collector] = [c for c in sidecars if c["name"] == "otel-collector"]
    assert "otelcol-google" in collector["image"]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert set(volumes) == {"models", "otel-config"}
    assert volumes["otel-config"]["secret"]["secretName"] == "otel-collector-config"
    depends = json.loads(
        template["metadata"]["annotations"]["run.googleapis.com/container-dependencies"]
    )
    assert depends == {"app": ["ollama", "otel-collector"]}
    [config] = docs(files["gcp/otel-collector.yaml"])
    assert config["exporters"]["otlphttp"]["endpoint"] == "https://telemetry.googleapis.com"
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlphttp"]
    assert "gcloud secrets create otel-collector-config" in files["gcp/otel-collector.yaml"]


def test_kubernetes_points_the_app_at_the_collector_service(tmp_path: Path) -> None:
    endpoint = "http://collector.monitoring:4318"
    settings = traced(k8s_collector_endpoint=endpoint)
    files = render(settings, "k8s")
    [config_map] = docs(files["k8s/configmap.yaml"])
    assert config_map["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint
    paths = app_manifests(write(files, tmp_path))
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_otlp_metrics_alone_also_gets_the_collector() -> None:
    settings = Settings(metrics={"sink": "otlp"}, deploy={"gcp_project": "acme"})
    [config_map] = docs(render(settings, "k8s")["k8s/configmap.yaml"])
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in config_map["data"]


@pytest.mark.slow
def test_traced_serverless_yml_packages_and_lints(serverless: Path, tmp_path: Path) -> None:
    yml = render(traced(aws_layer_arn=LAYER), "lambda")["serverless.yml"]
    template = package(serverless, tmp_path, yml)
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert functions and all(
        f["Properties"]["TracingConfig"] == {"Mode": "Active"} for f in functions
    )
    assert all(LAYER in f["Properties"]["Layers"] for f in functions)

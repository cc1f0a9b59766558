"""deploy.* knobs and runtime settings that every renderer must carry into its manifests."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from aiservice.config import Settings
from aiservice.deploy import render

from .test_render import docs

GRACE = "AISERVICE_SERVER__GRACEFUL_SHUTDOWN_SECONDS"


def k8s_pod(settings: Settings) -> dict[str, Any]:
    spec: dict[str, Any] = docs(render(settings, "k8s")["k8s/deployment.yaml"])[0]["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def cloud_run(settings: Settings) -> dict[str, Any]:
    service: dict[str, Any] = docs(render(settings, "cloudrun")["gcp/service.yaml"])[0]
    return service


def env_list(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# ---- server.graceful_shutdown_seconds


@pytest.mark.parametrize("grace", [3, 25])
def test_grace_reaches_kubernetes_and_its_kill_window_covers_it(grace: int) -> None:
    pod = k8s_pod(Settings(server={"graceful_shutdown_seconds": grace}))
    (app,) = pod["containers"]
    assert env_list(app)[GRACE] == str(grace)
    pre_stop = int(app["lifecycle"]["preStop"]["exec"]["command"][1])
    # preStop runs first, then SIGTERM; the app needs the grace plus the 503 flush.
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + grace + 1


def test_grace_reaches_compose_and_cloud_run() -> None:
    settings = Settings(server={"graceful_shutdown_seconds": 4.5})
    compose = docs(render(settings, "compose")["docker-compose.yml"])[0]["services"]["app"]
    assert compose["environment"][GRACE] == "4.5"
    assert int(compose["stop_grace_period"].rstrip("s")) >= 4.5 + 1
    (app,) = cloud_run(settings)["spec"]["template"]["spec"]["containers"]
    assert env_list(app)[GRACE] == "4.5"


def test_cloud_run_caps_the_grace_inside_its_ten_second_window() -> None:
    settings = Settings(server={"graceful_shutdown_seconds": 30})
    text = render(settings, "cloudrun")["gcp/service.yaml"]
    (app,) = docs(text)[0]["spec"]["template"]["spec"]["containers"]
    assert float(env_list(app)[GRACE]) + 1 < 10
    assert "capped" in text.split("apiVersion")[0]


# ---- deploy.public


@pytest.mark.parametrize(
    ("config", "public"),
    [
        ({}, False),  # no API keys: an open gateway is not put on the internet
        ({"auth": {"api_keys": ["secret://env/CLIENT_KEY"]}}, True),
        ({"auth": {"api_keys": ["secret://env/CLIENT_KEY"]}, "deploy": {"public": False}}, False),
        ({"deploy": {"public": True}}, True),
    ],
)
def test_public_access_for_cloud_run_and_functions(config: dict[str, Any], public: bool) -> None:
    settings = Settings(**config)
    annotations = cloud_run(settings)["metadata"]["annotations"]
    assert annotations["run.googleapis.com/invoker-iam-disabled"] == str(public).lower()
    script = render(settings, "function")["gcp/deploy-function.sh"]
    flag = "--allow-unauthenticated" if public else "--no-allow-unauthenticated"
    assert f"  {flag} \\\n" in script
    assert script.count("allow-unauthenticated") == 1


# ---- ports, replicas


def test_configured_port_is_used_by_compose_healthcheck_and_probes() -> None:
    settings = Settings(server={"port": 9000})
    app = docs(render(settings, "compose")["docker-compose.yml"])[0]["services"]["app"]
    assert app["ports"] == ["127.0.0.1:9000:9000"]
    assert app["environment"]["PORT"] == "9000"  # the image's PORT=8080 would win otherwise
    assert "http://127.0.0.1:9000/health/live" in app["healthcheck"]["test"][-1]
    (container,) = k8s_pod(settings)["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 9000}]
    assert env_list(container)["PORT"] == "9000"
    (run_app,) = cloud_run(settings)["spec"]["template"]["spec"]["containers"]
    assert run_app["ports"][0]["containerPort"] == 9000
    assert run_app["startupProbe"]["httpGet"]["port"] == 9000
    assert "PORT" not in env_list(run_app)  # reserved on Cloud Run


def test_hpa_owns_the_replica_count() -> None:
    files = render(Settings(deploy={"replicas": 3}), "k8s")
    deployment = docs(files["k8s/deployment.yaml"])[0]
    assert "replicas" not in deployment["spec"]
    assert docs(files["k8s/hpa.yaml"])[0]["spec"]["minReplicas"] == 3


# ---- identities and networks


def test_k8s_service_account_for_workload_identity() -> None:
    annotations = {"iam.gke.io/gcp-service-account": "gw@acme.iam.gserviceaccount.com"}
    settings = Settings(
        deploy={"k8s_service_account": "gw", "k8s_service_account_annotations": annotations}
    )
    files = render(settings, "k8s")
    account = docs(files["k8s/serviceaccount.yaml"])[0]
    assert account["kind"] == "ServiceAccount"
    assert account["metadata"]["name"] == "gw"
    assert account["metadata"]["annotations"] == annotations
    assert k8s_pod(settings)["serviceAccountName"] == "gw"
    assert "k8s/serviceaccount.yaml" not in render(Settings(), "k8s")
    assert "serviceAccountName" not in k8s_pod(Settings())


def test_cloud_run_vpc_egress_and_cloud_sql() -> None:
    settings = Settings(
        deploy={
            "vpc_network": "default",
            "vpc_subnetwork": "run",
            "vpc_egress": "all-traffic",
            "cloudsql_instances": ["acme:us-central1:db", "acme:us-central1:db2"],
        }
    )
    annotations = cloud_run(settings)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["run.googleapis.com/network-interfaces"] == (
        '[{"network": "default", "subnetwork": "run"}]'
    )
    assert annotations["run.googleapis.com/vpc-access-egress"] == "all-traffic"
    assert annotations["run.googleapis.com/cloudsql-instances"] == (
        "acme:us-central1:db,acme:us-central1:db2"
    )
    plain = cloud_run(Settings())["spec"]["template"]["metadata"]["annotations"]
    assert not any("vpc" in k or "cloudsql" in k or "network" in k for k in plain)


def test_vpc_connector_for_cloud_run_and_functions() -> None:
    settings = Settings(deploy={"vpc_connector": "projects/acme/locations/r/connectors/c"})
    annotations = cloud_run(settings)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["run.googleapis.com/vpc-access-connector"].endswith("/connectors/c")
    assert annotations["run.googleapis.com/vpc-access-egress"] == "private-ranges-only"
    script = render(settings, "function")["gcp/deploy-function.sh"]
    assert "--vpc-connector=projects/acme/locations/r/connectors/c" in script
    assert "--egress-settings=private-ranges-only" in script


def test_lambda_vpc_and_runtime() -> None:
    settings = Settings(
        deploy={
            "lambda_subnet_ids": ["subnet-1", "subnet-2"],
            "lambda_security_group_ids": ["sg-1"],
            "lambda_runtime": "python3.11",
        }
    )
    provider = docs(render(settings, "lambda")["serverless.yml"])[0]["provider"]
    assert provider["vpc"] == {"securityGroupIds": ["sg-1"], "subnetIds": ["subnet-1", "subnet-2"]}
    assert provider["runtime"] == "python3.11"
    assert "vpc" not in docs(render(Settings(), "lambda")["serverless.yml"])[0]["provider"]


@pytest.mark.parametrize(
    "deploy",
    [
        {"lambda_subnet_ids": ["subnet-1"]},
        {"vpc_connector": "c", "vpc_network": "n"},
        {"vpc_subnetwork": "s"},
        {"lambda_runtime": "python3.8"},
    ],
)
def test_inconsistent_network_settings_are_rejected(deploy: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(deploy=deploy)

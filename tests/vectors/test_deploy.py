"""A Qdrant server the deployment runs is rendered: a compose service, a StatefulSet that
validates strictly and passes the restricted Pod Security profile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiservice.config import Settings
from aiservice.deploy import render, write

from ..deploy.test_pod_security import violations

SERVER = {
    "backend": "qdrant",
    "url": "http://qdrant:6333",
    "api_key": "secret://env/QDRANT_API_KEY",
    "embedding_model": "embed",
}


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def test_compose_runs_qdrant_and_points_the_app_at_it() -> None:
    files = render(Settings(vectors=SERVER), "compose")
    compose = yaml.safe_load(files["docker-compose.yml"])
    qdrant = compose["services"]["qdrant"]
    assert qdrant["image"].startswith("qdrant/qdrant:")
    assert qdrant["volumes"] == ["qdrant-data:/qdrant/storage"]
    assert qdrant["environment"]["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY:?")
    app = compose["services"]["app"]
    assert app["environment"]["AISERVICE_VECTORS__URL"] == "http://qdrant:6333"
    assert app["environment"]["QDRANT_API_KEY"].startswith("${QDRANT_API_KEY:?")
    assert "qdrant" in app["depends_on"] and "qdrant-data" in compose["volumes"]


@pytest.mark.parametrize(
    "vectors",
    [
        {},
        {"backend": "qdrant", "location": "/data/q", "embedding_model": "e"},
        {"backend": "qdrant", "url": "https://abc.eu-central.aws.cloud.qdrant.io:6333"},
    ],
)
def test_nothing_is_rendered_without_a_server_of_our_own(vectors: dict[str, Any]) -> None:
    settings = Settings(vectors=vectors)
    assert (
        "qdrant"
        not in yaml.safe_load(render(settings, "compose")["docker-compose.yml"])["services"]
    )
    assert "k8s/qdrant.yaml" not in render(settings, "k8s")


def test_k8s_statefulset_validates_and_is_restricted(tmp_path: Path) -> None:
    settings = Settings(vectors=SERVER)
    files = render(settings, "k8s")
    stateful_set, service = _docs(files["k8s/qdrant.yaml"])
    assert stateful_set["kind"] == "StatefulSet" and service["kind"] == "Service"
    assert stateful_set["spec"]["serviceName"] == service["metadata"]["name"] == "aiservice-qdrant"
    pod = stateful_set["spec"]["template"]["spec"]
    assert violations(pod) == []
    [env] = pod["containers"][0]["env"]
    assert env["valueFrom"]["secretKeyRef"] == {
        "name": "aiservice-secrets",
        "key": "QDRANT_API_KEY",
    }
    config = _docs(files["k8s/configmap.yaml"])[0]["data"]
    assert config["AISERVICE_VECTORS__URL"] == "http://aiservice-qdrant:6333"
    paths = [p for p in write(files, tmp_path) if p.parent.name != "monitoring"]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "qdrant.yaml" in result.stdout


def test_cloud_run_says_how_to_grant_the_uploads_bucket() -> None:
    files = {"backend": "gcs", "bucket": "team-uploads"}
    settings = Settings(vectors={**SERVER, "files": files}, deploy={"gcp_project": "acme"})
    head = render(settings, "cloudrun")["gcp/service.yaml"]
    service = _docs(head)[0]
    account = service["spec"]["template"]["spec"]["serviceAccountName"]
    expected = (
        "gcloud storage buckets add-iam-policy-binding gs://team-uploads "
        f"--member=serviceAccount:{account} --role=roles/storage.objectAdmin"
    )
    assert expected in head
    local = render(Settings(vectors=SERVER), "cloudrun")["gcp/service.yaml"]
    assert "roles/storage.objectAdmin" not in local

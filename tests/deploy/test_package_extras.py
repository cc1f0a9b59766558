"""The aiservice extras a deployment package holds follow the configuration: Lambda's
``custom.packageExtras`` in serverless.yml (read by scripts/build-lambda-package.sh; the
package built with one is checked in test_lambda_package.py) and the Cloud Functions
source's requirements.txt."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from aiservice.deploy import render

from .conftest import REPO


@pytest.mark.parametrize(
    ("config", "extras"),
    [
        ({}, None),
        ({"cache": {"backend": "redis"}}, "aws,redis"),
        ({"orchestrator": {"queue": {"backend": "redis-streams"}}}, "aws,redis"),
        ({"tracing": {"enabled": True}}, "aws,xray"),
        ({"metrics": {"sink": "otlp"}}, "aws,xray"),
        ({"vectors": {"backend": "qdrant"}}, "aws,qdrant"),
        (
            {
                "cache": {"backend": "redis"},
                "tracing": {"enabled": True},
                "vectors": {"backend": "qdrant"},
            },
            "aws,redis,xray,qdrant",
        ),
    ],
)
def test_serverless_yml_names_the_extras_the_configuration_needs(
    make_settings: Any, config: dict[str, Any], extras: str | None
) -> None:
    doc = yaml.safe_load(render(make_settings(config), "lambda")["serverless.yml"])
    assert doc.get("custom", {}).get("packageExtras") == extras
    if extras is None:  # the committed default manifest stays as it was
        assert "packageExtras" not in (REPO / "serverless.yml").read_text()


@pytest.mark.parametrize(
    ("config", "requirement"),
    [
        ({}, "[gcp]"),
        ({"cache": {"backend": "redis"}, "tracing": {"enabled": True}}, "[gcp,redis,otel]"),
        ({"vectors": {"backend": "qdrant"}}, "[gcp,qdrant]"),
    ],
)
def test_the_cloud_function_source_requires_the_extras_too(
    make_settings: Any, config: dict[str, Any], requirement: str
) -> None:
    script = render(make_settings(config), "function")["gcp/deploy-function.sh"]
    line = next(x for x in script.splitlines() if "requirements.txt" in x and "echo" in x)
    assert line.endswith(f'{requirement}" > "$SRC/requirements.txt"'), line


def test_the_image_default_extras_match_the_dockerfile() -> None:
    from aiservice.deploy.extras import IMAGE_EXTRAS

    assert f"ARG EXTRAS={','.join(IMAGE_EXTRAS)}\n" in (REPO / "Dockerfile").read_text()


@pytest.mark.parametrize(
    ("config", "extras"),
    [
        ({}, None),
        ({"cache": {"backend": "redis"}}, None),  # in the image already
        ({"tracing": {"enabled": True}}, "server,redis,aws,gcp,otel"),
        ({"vectors": {"backend": "qdrant"}}, "server,redis,aws,gcp,qdrant"),
    ],
)
def test_the_container_build_installs_what_the_configuration_imports(
    make_settings: Any, config: dict[str, Any], extras: str | None
) -> None:
    settings = make_settings(config)
    steps = yaml.safe_load(render(settings, "cloudrun")["gcp/cloudbuild.yaml"])["steps"]
    args = steps[0]["args"]
    deployment = render(settings, "k8s")["k8s/deployment.yaml"]
    if extras is None:
        assert not any(a.startswith("--build-arg=EXTRAS") for a in args)
        assert "EXTRAS" not in deployment
    else:
        assert f"--build-arg=EXTRAS={extras}" in args
        assert f"--build-arg EXTRAS={extras}" in deployment  # the note on building the image

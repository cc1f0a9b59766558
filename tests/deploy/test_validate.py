"""Rendered manifests pass the platforms' own tools: serverless package + cfn-lint, and
kubernetes-validate --strict (bundled schemas, offline)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from aiservice.config import Settings
from aiservice.deploy import render, write

from .conftest import REPO

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SLS_DIR = REPO / "tools" / "serverless"
SLS = SLS_DIR / "node_modules" / ".bin" / "serverless"
# Serverless's own HttpApi resources carry a redundant DependsOn; not ours to change.
CFN_IGNORE = "W3005"


@pytest.fixture(scope="module")
def serverless() -> Path:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: cannot run the Serverless Framework CLI")
    if not SLS.exists():  # scripts/test.sh installs it; do it here for a bare pytest run
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=SLS_DIR,
            check=True,
            timeout=600,
        )
    return SLS


def package(serverless: Path, project: Path, yml: str) -> dict[str, Any]:
    """`serverless package` offline (dummy credentials), then cfn-lint the template."""
    (project / "serverless.yml").write_text(yml)
    (project / ".build").mkdir(exist_ok=True)
    with zipfile.ZipFile(project / ".build" / "lambda.zip", "w") as zf:
        zf.write(REPO / "adapters" / "aws_lambda.py", "adapters/aws_lambda.py")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(project),
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "dummy-secret-for-offline-packaging",
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
    }
    result = subprocess.run(
        [str(serverless), "package", "--stage", "test"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    template = project / ".serverless" / "cloudformation-template-update-stack.json"
    lint = subprocess.run(
        [str(BIN / "cfn-lint"), "--ignore-checks", CFN_IGNORE, "--", str(template)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    data: dict[str, Any] = json.loads(template.read_text())
    return data


def test_committed_serverless_yml_packages_and_lints(serverless: Path, tmp_path: Path) -> None:
    template = package(serverless, tmp_path, (REPO / "serverless.yml").read_text())
    resources = template["Resources"]
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
    assert {f["Properties"]["Runtime"] for f in functions.values()} == {"python3.12"}
    url = next(v for v in resources.values() if v["Type"] == "AWS::Lambda::Url")
    assert url["Properties"]["InvokeMode"] == "RESPONSE_STREAM"
    mapping = next(v for v in resources.values() if v["Type"] == "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    table = resources["StateTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"]["AttributeName"] == "expires_at"


def app_manifests(paths: list[Path]) -> list[Path]:
    """``k8s/*.yaml``; ``k8s/monitoring/`` has a CRD without a bundled schema (test_monitoring)."""
    return [p for p in paths if p.parent.name != "monitoring"]


def test_committed_k8s_manifests_validate_strictly() -> None:
    files = sorted(str(p) for p in (REPO / "k8s").glob("*.yaml"))
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(files) + 1  # redis.yaml holds two resources


def test_k8s_with_secrets_validates_strictly(tmp_path: Path) -> None:
    from .conftest import SECRETS_CONFIG

    paths = app_manifests(write(render(Settings(**SECRETS_CONFIG), "k8s"), tmp_path))
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_serverless_yml_with_vpc_and_flows_packages_and_lints(
    serverless: Path, tmp_path: Path
) -> None:
    settings = Settings(
        flows_dir="flows",
        deploy={
            "lambda_subnet_ids": ["subnet-0a1b2c3d"],
            "lambda_security_group_ids": ["sg-0a1b2c3d"],
            "lambda_runtime": "python3.11",
        },
    )
    yml = render(settings, "lambda")["serverless.yml"]
    template = package(serverless, tmp_path, yml)
    functions = [v for v in template["Resources"].values() if v["Type"] == "AWS::Lambda::Function"]
    assert functions and all(
        f["Properties"]["VpcConfig"]
        == {
            "SecurityGroupIds": ["sg-0a1b2c3d"],
            "SubnetIds": ["subnet-0a1b2c3d"],
        }
        and f["Properties"]["Runtime"] == "python3.11"
        for f in functions
    )


def test_k8s_with_service_account_validates_strictly(tmp_path: Path) -> None:
    settings = Settings(
        deploy={
            "k8s_service_account": "gw",
            "k8s_service_account_annotations": {
                "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/gw"
            },
        }
    )
    paths = app_manifests(write(render(settings, "k8s"), tmp_path))
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(p.name == "serviceaccount.yaml" for p in paths)
    assert result.stdout.count("passed") == len(paths) + 1  # redis.yaml holds two resources

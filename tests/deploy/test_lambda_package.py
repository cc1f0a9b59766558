"""scripts/build-lambda-package.sh: the zip holds what each function runs, flows included,
bytecode for the runtime serverless.yml names, and not the boto3 the runtime provides.

The package is built for this interpreter's version (``deploy.lambda_runtime``) and then
run by it with ``-S``: no site-packages, only the package on the path, as on Lambda.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from aiservice.config import load_settings
from aiservice.deploy import render, write
from tests.platforms.procs import running
from tests.support.servers import free_port

from .conftest import REPO

pytestmark = pytest.mark.slow

RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
TAG = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
FLOW = {"steps": {"ping": {"url": "https://fn.example/ping"}}, "output": "${steps.ping.output}"}


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project with flows_dir, rendered for this Python, built; yields the unpacked zip."""
    root = tmp_path_factory.mktemp("project")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, root / name)
    for name in ("src", "adapters", "scripts"):
        shutil.copytree(
            REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    (root / "flows").mkdir()
    (root / "flows" / "ping.yaml").write_text(yaml.safe_dump(FLOW))
    config = {
        "flows_dir": "flows",
        "deploy": {"lambda_runtime": RUNTIME},
        # A Redis cache (ElastiCache in the VPC): the package must hold the redis client.
        "cache": {"backend": "redis", "url": "redis://127.0.0.1:6379/15"},
    }
    (root / "aiservice.yaml").write_text(yaml.safe_dump(config))
    settings = load_settings(root / "aiservice.yaml", environ={}, dotenv_file=None, cwd=root)
    write(render(settings, "lambda"), root)
    env = {**os.environ, "PROJECT_ROOT": str(root), "PYTHON": sys.executable}
    subprocess.run(
        ["bash", str(root / "scripts" / "build-lambda-package.sh")],
        env=env,
        check=True,
        capture_output=True,
        timeout=900,
    )
    unpacked = root / "unpacked"
    with zipfile.ZipFile(root / ".build" / "lambda.zip") as zf:
        zf.extractall(unpacked)
    (unpacked / "adapters" / "lambda_stream.sh").chmod(0o755)
    yield unpacked


def bare_python_env(task_root: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    """``python3`` is this interpreter without site-packages; only the package is importable."""
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "python3").write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    (shim / "python3").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AISERVICE_", "PYTHON"))}
    env.update(
        PATH=f"{shim}:/usr/bin:/bin",
        LAMBDA_TASK_ROOT=str(task_root),
        AISERVICE_CONFIG=str(task_root / "aiservice.yaml"),
        **extra,
    )
    return env


def test_stream_function_starts_from_the_package(package: Path, tmp_path: Path) -> None:
    """What adapters/lambda_stream.sh runs (uvicorn + cloud_run.py) is in the zip."""
    env = bare_python_env(
        package, tmp_path, PORT=str(free_port()), AISERVICE_SERVER__HOST="127.0.0.1"
    )
    script = str(package / "adapters" / "lambda_stream.sh")
    with running(["/bin/sh", script], env=env, cwd=tmp_path) as (base, _):
        assert httpx.get(f"{base}/health/live", timeout=5).json() == {"status": "ok"}
        ready = httpx.get(f"{base}/health/ready", timeout=5).json()
        assert ready["checks"]["flows"]["detail"] == "1 flow(s) valid"  # flows_dir travelled


def test_api_handler_imports_from_the_package(package: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.path.insert(0, 'adapters'); import aws_lambda, uvicorn, redis;"
        "print(aws_lambda.runtime.settings.flows_dir, uvicorn.__file__, redis.__file__)"
    )
    out = subprocess.run(
        ["python3", "-c", code],
        cwd=package,
        env={**bare_python_env(package, tmp_path), "PYTHONPATH": str(package)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    flows_dir, uvicorn_file, redis_file = out.stdout.split()
    assert flows_dir == "flows" and uvicorn_file.startswith(str(package))
    assert redis_file.startswith(str(package))  # custom.packageExtras: aws,redis


def test_package_contents(package: Path) -> None:
    assert (package / "flows" / "ping.yaml").is_file()
    # The runtime provides the AWS SDK.
    for sdk in ("boto3", "botocore", "s3transfer"):
        assert not (package / sdk).exists(), sdk
    # Bytecode for the runtime's version, for the app and its dependencies.
    compiled = {p.parent.parent.name for p in package.rglob(f"*.{TAG}.pyc")}
    assert {"aiservice", "pydantic", "fastapi", "uvicorn"} <= compiled
    assert not [p for p in package.rglob("*.pyc") if TAG not in p.name]
    # PEP 552 unchecked-hash (flags 0b01): valid whatever mtimes the unzip gives sources.
    pyc = next((package / "aiservice" / "__pycache__").glob("app.*.pyc")).read_bytes()
    assert int.from_bytes(pyc[4:8], "little") == 0b01
    assert not (package / "tests").exists()
    # Only the extras the configuration uses: redis, not tracing or Qdrant.
    assert (package / "redis").is_dir()
    # (opentelemetry-api comes with a core dependency; the SDK is the otel extra's.)
    for unused in ("opentelemetry/sdk", "qdrant_client", "google"):
        assert not (package / unused).exists(), unused


def test_build_refuses_a_runtime_it_cannot_compile_for(tmp_path: Path) -> None:
    other = "python3.13" if RUNTIME != "python3.13" else "python3.12"
    (tmp_path / "serverless.yml").write_text(
        (REPO / "serverless.yml").read_text().replace("runtime: python3.12", f"runtime: {other}")
    )
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "PYTHON": sys.executable}
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-lambda-package.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert f"deploys {other}" in out.stderr and "deploy.lambda_runtime" in out.stderr
    assert not (tmp_path / ".build").exists()

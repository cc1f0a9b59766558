"""The thin per-target entry points in adapters/: small, light to import, working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import EVENTS_DIR
from .procs import REPO, clean_env

ADAPTERS = ["aws_lambda.py", "gcp_functions.py", "cloud_run.py"]
HEAVY = ["boto3", "botocore", "redis", "uvicorn", "google.cloud.secretmanager", "gunicorn"]


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapters_stay_thin(name: str) -> None:
    lines = (REPO / "adapters" / name).read_text().splitlines()
    assert len(lines) < 50


PROBE = """
import json, sys
sys.path.insert(0, {adapters!r})
import aws_lambda
heavy = {heavy!r}
loaded_at_import = [m for m in heavy if m in sys.modules]
event = json.loads(open({event!r}).read())
event["rawPath"] = event["requestContext"]["http"]["path"] = "/health/live"
event["requestContext"]["http"]["method"] = "GET"
first = aws_lambda.handler(event, None)
second = aws_lambda.handler(event, None)
print(json.dumps({{
    "loaded_at_import": loaded_at_import,
    "loaded_after_call": [m for m in heavy if m in sys.modules],
    "statuses": [first["statusCode"], second["statusCode"]],
    "body": json.loads(second["body"]),
    "started": aws_lambda.runtime.started,
}}))
"""


@pytest.mark.slow
def test_lambda_adapter_answers_without_heavy_imports(tmp_path: Path) -> None:
    """A fresh process imports the adapter (no SDKs) and answers API Gateway v2 events."""
    code = PROBE.format(
        adapters=str(REPO / "adapters"),
        heavy=HEAVY,
        event=str(EVENTS_DIR / "apiGatewayProxyV2Event.json"),
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(AISERVICE_LOGGING__ACCESS_LOG="false"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded_at_import"] == [] and result["loaded_after_call"] == []
    assert result["statuses"] == [200, 200]
    assert result["body"] == {"status": "ok"}
    assert result["started"] is True


SIGTERM_PROBE = """
import json, os, signal, sys
from contextlib import asynccontextmanager
from fastapi import FastAPI
from aiservice.platforms.aws_lambda import lambda_handler

@asynccontextmanager
async def lifespan(app):
    print("startup", flush=True)
    yield
    print("shutdown", flush=True)

handler = lambda_handler(FastAPI(lifespan=lifespan))
event = json.loads(open({event!r}).read())
for _ in range(3):
    assert handler(event, None)["statusCode"] == 404
os.kill(os.getpid(), signal.SIGTERM)  # what Lambda sends before retiring the environment
print("still running", flush=True)
"""


@pytest.mark.slow
def test_lambda_sigterm_runs_the_app_shutdown_then_exits() -> None:
    code = SIGTERM_PROBE.format(event=str(EVENTS_DIR / "apiGatewayProxyV2Event.json"))
    proc = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.split() == ["startup", "shutdown"], proc.stderr
    assert proc.returncode == -15

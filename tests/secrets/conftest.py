"""Local stand-ins for the secret stores: a moto server for AWS, an HTTP server for GCP.

Both are real servers on loopback, so the real boto3 and google-cloud-secret-manager
clients run their whole code path (serialisation, HTTP, error mapping) against them.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.servers import serve_app


class ManualClock:
    """An injectable monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


# --- AWS (moto) ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[str]:
    """A clean moto server and throw-away credentials (boto3 reads them from os.environ)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    httpx.post(f"{moto_url}/moto-api/reset").raise_for_status()
    yield moto_url


def boto_client(service: str, url: str) -> Any:
    import boto3

    return boto3.session.Session().client(service, region_name="us-east-1", endpoint_url=url)


# --- GCP (a local Secret Manager REST endpoint) ----------------------------------------------


@dataclass
class FakeSecretManager:
    """``GET /v1/projects/{p}/secrets/{s}/versions/{v}:access`` over an in-memory store.

    ``values`` maps ``projects/P/secrets/S/versions/V`` to the payload; ``denied`` holds
    names answered with 403; ``down`` makes every call a 500.
    """

    values: dict[str, str] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    down: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def access(self, request: Request) -> JSONResponse:
        p = request.path_params
        name = f"projects/{p['project']}/secrets/{p['secret']}/versions/{p['version']}"
        self.requests.append({"name": name, "headers": dict(request.headers)})
        if self.down:
            return _google_error(500, "INTERNAL", "Internal error encountered.")
        if name in self.denied:
            return _google_error(
                403, "PERMISSION_DENIED", "Permission 'secretmanager.versions.access' denied"
            )
        if name not in self.values:
            return _google_error(404, "NOT_FOUND", f"Secret [{name}] not found or has no versions.")
        data = base64.b64encode(self.values[name].encode()).decode()
        return JSONResponse({"name": name, "payload": {"data": data}})


def _google_error(code: int, status: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, code)


@pytest.fixture(scope="session")
def _gcp_server() -> Iterator[tuple[FakeSecretManager, str]]:
    fake = FakeSecretManager()
    path = "/v1/projects/{project}/secrets/{secret}/versions/{version}:access"
    app = Starlette(routes=[Route(path, fake.access)])
    with serve_app(app, lifespan="off") as url:
        yield fake, url


@pytest.fixture
def gcp(_gcp_server: tuple[FakeSecretManager, str]) -> tuple[FakeSecretManager, str]:
    fake, url = _gcp_server
    fake.values.clear()
    fake.denied.clear()
    fake.requests.clear()
    fake.down = False
    return fake, url

"""The Cloud Tasks callback route: who may call it, and what each answer tells the queue.

OIDC tokens are signed here with a throwaway key; its certificate is served on loopback
(``cloud_tasks.certs_url``), so the real google-auth verification runs end to end.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from aiservice import Settings, create_app, get_runtime
from aiservice.orchestrator.record import ExecutionRecord
from aiservice.runtime import Runtime

from ..conftest import MakeSettings
from ..support.servers import serve_app

ROUTE = "/internal/tasks/executions"
SECRET = "a-task-secret-long-enough-000"
TARGET = "https://svc.example.run.app"
ACCOUNT = "tasks@proj.iam.gserviceaccount.com"


@asynccontextmanager
async def app_for(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    app = create_app(settings, configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, get_runtime(app)


def _settings(make: MakeSettings, namespace: str, **tasks: Any) -> Settings:
    cloud_tasks = {"project": "proj", "target_url": TARGET, **tasks}
    return make(
        {
            "flows": {"f": {"steps": {"s": {"url": "http://127.0.0.1:9/never"}}}},
            "cache": {"backend": "redis", "namespace": namespace},
            "orchestrator": {"queue": {"backend": "cloud-tasks", "cloud_tasks": cloud_tasks}},
        }
    )


def _body(execution_id: str = "unknown") -> dict[str, str]:
    return {"kind": "orchestrator.execution", "execution_id": execution_id, "flow": "f"}


async def test_secret_is_required_and_compared(make_settings: MakeSettings, namespace: str) -> None:
    settings = _settings(make_settings, namespace, auth="secret", secret=SECRET)
    async with app_for(settings) as (client, _):
        missing = await client.post(ROUTE, json=_body())
        wrong = await client.post(ROUTE, json=_body(), headers={"X-AIService-Task-Secret": "x"})
        right = await client.post(ROUTE, json=_body(), headers={"X-AIService-Task-Secret": SECRET})
        bad = await client.post(
            ROUTE, json={"kind": "x"}, headers={"X-AIService-Task-Secret": SECRET}
        )
    assert missing.status_code == wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_task_credentials"
    assert right.status_code == 204  # unknown execution: acknowledged, not retried
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


async def test_route_is_absent_without_the_cloud_tasks_queue(make_settings: MakeSettings) -> None:
    settings = make_settings({"flows": {"f": {"steps": {"s": {"url": "http://127.0.0.1:9/"}}}}})
    async with app_for(settings) as (client, _):
        answer = await client.post(ROUTE, json=_body())
    assert answer.status_code == 404


async def test_busy_execution_answers_503_so_the_queue_retries(
    make_settings: MakeSettings, namespace: str
) -> None:
    settings = _settings(make_settings, namespace, auth="secret", secret=SECRET)
    async with app_for(settings) as (client, runtime):
        orchestrator = runtime.orchestrator
        assert orchestrator is not None
        record = ExecutionRecord(flow="f", status="queued", mode="async")
        await orchestrator.store.save(record)
        assert await orchestrator.store.acquire_lease(record.execution_id, "other-worker", 5)
        answer = await client.post(
            ROUTE, json=_body(record.execution_id), headers={"X-AIService-Task-Secret": SECRET}
        )
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["error"]["code"] == "execution_busy"


# -- OIDC -----------------------------------------------------------------------------------


CERT_FETCHES: list[float] = []


@pytest.fixture(scope="module")
def signing() -> Iterator[tuple[Any, str]]:
    """(signer, certs_url): a fresh RSA key whose certificate is served on loopback."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from google.auth import crypt

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    app = FastAPI()

    @app.get("/certs")
    async def certs() -> dict[str, str]:
        CERT_FETCHES.append(time.monotonic())
        return {"kid-1": pem}

    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with serve_app(app) as url:
        yield crypt.RSASigner.from_string(private, key_id="kid-1"), f"{url}/certs"


def _token(signer: Any, **claims: Any) -> str:
    from google.auth import jwt

    now = int(time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": TARGET,
        "email": ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    return jwt.encode(signer, payload).decode()


async def test_oidc_token_of_the_task_account_is_accepted(
    make_settings: MakeSettings, namespace: str, signing: tuple[Any, str]
) -> None:
    signer, certs_url = signing
    settings = _settings(
        make_settings, namespace, auth="oidc", service_account=ACCOUNT, certs_url=certs_url
    )

    async def call(token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return await client.post(ROUTE, json=_body(), headers=headers)

    async with app_for(settings) as (client, _):
        good = await call(_token(signer))
        audience = await call(_token(signer, aud="https://other.example"))
        account = await call(_token(signer, email="someone@proj.iam.gserviceaccount.com"))
        issuer = await call(_token(signer, iss="https://evil.example"))
        expired = await call(_token(signer, iat=1, exp=2))
        none = await client.post(ROUTE, json=_body())
    assert good.status_code == 204, good.text
    for refused in (audience, account, issuer, expired, none):
        assert refused.status_code == 401, refused.text
    assert len(CERT_FETCHES) == 1  # the signing certificates are cached


def test_task_request_carries_the_message_and_the_credentials() -> None:
    from aiservice.config.queues import CloudTasksQueueSettings
    from aiservice.queues.base import Message
    from aiservice.queues.cloudtasks import task_request

    message = Message.execution("e1", "f")
    oidc = CloudTasksQueueSettings(target_url=TARGET + "/", service_account=ACCOUNT)
    task = task_request(oidc, message, None)
    http = task["http_request"]
    assert http["url"] == TARGET + ROUTE and http["http_method"] == "POST"
    assert json.loads(http["body"]) == {**_body("e1")}
    assert http["oidc_token"] == {"service_account_email": ACCOUNT, "audience": TARGET}
    assert task["dispatch_deadline"] == {"seconds": 300}
    shared = CloudTasksQueueSettings(target_url=TARGET, auth="secret", dispatch_deadline=60)
    task = task_request(shared, message, SECRET)
    assert task["http_request"]["headers"]["X-AIService-Task-Secret"] == SECRET
    assert "oidc_token" not in task["http_request"]
    with pytest.raises(ValueError, match="target_url"):
        task_request(CloudTasksQueueSettings(service_account=ACCOUNT), message, None)
    with pytest.raises(ValueError, match="service_account"):
        task_request(CloudTasksQueueSettings(target_url=TARGET), message, None)

"""Step auth against receivers that verify it: bearer, AWS SigV4 (botocore), Google ID tokens."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..support.servers import serve_app
from .conftest import FlowSettings, orchestrator_app

AKID, SECRET_KEY = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def sigv4_valid(request_url: str, method: str, headers: dict[str, str], body: bytes) -> bool:
    """Recompute the signature with botocore from what the server received."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False
    fields = dict(part.strip().split("=", 1) for part in auth[17:].split(","))
    _, _, region, service, _ = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    aws = AWSRequest(
        method=method, url=request_url, data=body, headers={h: headers[h] for h in signed}
    )
    aws.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(AKID, SECRET_KEY), service, region)
    canonical = signer.canonical_request(aws)
    expected = signer.signature(signer.string_to_sign(aws, canonical), aws)
    return bool(expected == fields["Signature"] and fields["Credential"].startswith(AKID))


class Receiver:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []
        self.token_requests = 0
        self.public_pem = b""
        self.private_pem = b""


def receiver_app(state: Receiver) -> FastAPI:
    from google.auth import crypt, jwt

    app = FastAPI()

    @app.post("/sigv4")
    async def sigv4(request: Request) -> Any:
        body = await request.body()
        ok = sigv4_valid(str(request.url), request.method, dict(request.headers), body)
        state.seen.append(("sigv4", ok))
        first = sum(1 for name, _ in state.seen if name == "sigv4") == 1
        if first:  # the first attempt fails: the retry must be signed again
            return JSONResponse({}, status_code=503, headers={"retry-after-ms": "10"})
        return JSONResponse({"ok": ok}, status_code=200 if ok else 403)

    @app.post("/bearer")
    async def bearer(request: Request) -> Any:
        ok = request.headers.get("authorization") == "Bearer vacancy-token"
        state.seen.append(("bearer", ok))
        return JSONResponse({"ok": ok}, status_code=200 if ok else 401)

    @app.post("/token")
    async def token(request: Request) -> Any:
        form = urllib.parse.parse_qs((await request.body()).decode())
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        claims = jwt.decode(form["assertion"][0], certs=state.public_pem)
        state.token_requests += 1
        now = int(time.time())
        id_token = jwt.encode(
            crypt.RSASigner.from_string(state.private_pem),
            {
                "aud": claims["target_audience"],
                "iss": "https://accounts.google.com",
                "sub": "sa",
                "iat": now,
                "exp": now + 3600,
            },
        )
        return {"id_token": id_token.decode()}

    @app.post("/google/{name}")
    async def google_protected(name: str, request: Request) -> Any:
        header = request.headers.get("authorization", "")
        audience = str(request.url.replace(query=""))
        try:
            claims = jwt.decode(
                header.removeprefix("Bearer "), certs=state.public_pem, audience=audience
            )
            ok = True
        except ValueError:
            claims, ok = {}, False
        state.seen.append((f"google-{name}", ok))
        return JSONResponse({"aud": claims.get("aud")}, status_code=200 if ok else 401)

    return app


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Receiver, Path]]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state = Receiver()
    state.private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    state.public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with serve_app(receiver_app(state)) as url:
        sa = {
            "type": "service_account",
            "project_id": "test",
            "private_key_id": "k1",
            "private_key": state.private_pem.decode(),
            "client_email": "orchestrator@test.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": f"{url}/token",
        }
        path = tmp_path / "sa.json"
        path.write_text(json.dumps(sa))
        yield url, state, path


async def test_sigv4_signature_verifies_on_every_attempt(
    flow_settings: FlowSettings, receiver: tuple[str, Receiver, Path]
) -> None:
    url, state, _ = receiver
    flow = {
        "steps": {
            "match": {
                "url": f"{url}/sigv4?q=a%20b&z=1",
                "body": {"user_id": "${input.user_id}", "text": "olá"},
                "retry": {"max_attempts": 2, "initial_delay": 0},
                "auth": {
                    "type": "aws_sigv4",
                    "service": "lambda",
                    "region": "us-east-1",
                    "access_key_id": "secret://env/AKID",
                    "secret_access_key": "secret://env/SAK",
                },
            }
        }
    }
    settings = flow_settings({"f": flow}, {"AKID": AKID, "SAK": SECRET_KEY})
    async with orchestrator_app(settings) as (client, _):
        response = await client.post("/orchestrate/f", json={"user_id": "u1"})
    assert response.status_code == 200, response.text
    assert response.json()["steps"]["match"]["attempts"] == 2
    assert state.seen == [("sigv4", True), ("sigv4", True)]


async def test_sigv4_with_wrong_secret_is_rejected_by_receiver(
    flow_settings: FlowSettings, receiver: tuple[str, Receiver, Path]
) -> None:
    url, state, _ = receiver
    auth = {
        "type": "aws_sigv4",
        "region": "us-east-1",
        "access_key_id": AKID,
        "secret_access_key": "not-the-key",
    }
    flow = {
        "steps": {
            "s": {
                "url": f"{url}/sigv4",
                "body": {},
                "auth": auth,
                "retry": {"max_attempts": 2, "initial_delay": 0},
            }
        }
    }
    async with orchestrator_app(flow_settings({"f": flow})) as (client, _):
        response = await client.post("/orchestrate/f", json={})
    assert response.status_code == 502
    assert state.seen == [("sigv4", False), ("sigv4", False)]


async def test_bearer_token_comes_from_secret_reference(
    flow_settings: FlowSettings, receiver: tuple[str, Receiver, Path]
) -> None:
    url, state, _ = receiver
    flow = {
        "steps": {
            "v": {
                "url": f"{url}/bearer",
                "auth": {"type": "bearer", "token": "secret://env/VACANCY_TOKEN"},
            }
        }
    }
    settings = flow_settings({"f": flow}, {"VACANCY_TOKEN": "vacancy-token"})
    async with orchestrator_app(settings) as (client, _):
        response = await client.post("/orchestrate/f", json={})
    assert response.status_code == 200, response.text
    assert state.seen == [("bearer", True)]


async def test_google_id_token_from_service_account_is_cached_per_audience(
    flow_settings: FlowSettings, receiver: tuple[str, Receiver, Path]
) -> None:
    url, state, sa_path = receiver
    google = {"type": "google_id_token"}
    flow = {
        "steps": {
            "embed": {"url": f"{url}/google/embed?v=1", "auth": google},
            "again": {"url": f"{url}/google/embed?v=2", "auth": google, "depends_on": ["embed"]},
            "other": {"url": f"{url}/google/other", "auth": google},
        }
    }
    settings = flow_settings({"f": flow}, {"GOOGLE_APPLICATION_CREDENTIALS": str(sa_path)})
    async with orchestrator_app(settings) as (client, _):
        first = await client.post("/orchestrate/f", json={})
        second = await client.post("/orchestrate/f", json={})
    assert first.status_code == second.status_code == 200, first.text
    assert first.json()["output"]["embed"]["aud"] == f"{url}/google/embed"
    assert all(ok for _, ok in state.seen) and len(state.seen) == 6
    # One token per audience (embed, other), reused across steps and executions.
    assert state.token_requests == 2

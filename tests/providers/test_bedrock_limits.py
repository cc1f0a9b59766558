"""Bedrock answers are bounded like the HTTP providers' (``limits.max_upstream_body_bytes``
/ ``_line_bytes``): against a real loopback server speaking the Bedrock runtime protocol
that never stops sending, boto3 (unmodified, signing and parsing included) gives up at the
bound, the provider raises the mapped ``protocol`` error and the gateway answers 502."""

from __future__ import annotations

import json
import logging
import struct
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from aiservice.config import ProviderSettings, Settings
from aiservice.providers.base import ProviderError
from aiservice.providers.bedrock import BedrockProvider
from aiservice.providers.bedrock_limits import bound_bodies
from aiservice.secrets.base import SecretResolver
from aiservice.transport import limits
from tests.providers.fixtures.bedrock_upstream import event_frame
from tests.support.endless import Endless
from tests.support.servers import serve_app

MAX_BODY = 1024 * 1024
MAX_LINE = 256 * 1024
USER = [{"role": "user", "content": "hi"}]
EMBED = "amazon.titan-embed-text-v2:0"


def _app(endless: Endless) -> Starlette:
    async def model(request: Request) -> Response:
        await request.body()
        mode, action = request.path_params["model"], request.path_params["action"]
        key = f"{mode}/{action}"
        if action == "converse-stream":
            # One ordinary event, then one whose prelude announces 1 GiB and never ends.
            first = event_frame({"messageStart": {"role": "assistant"}})
            head = first + struct.pack(">II", 1 << 30, 0)
            return StreamingResponse(
                endless.body(key, head), media_type="application/vnd.amazon.eventstream"
            )
        headers = {"content-length": str(1 << 40)} if mode == "declared" else None
        status = 500 if mode == "error" else 200
        extra = {"x-amzn-errortype": "InternalServerException"} if status == 500 else {}
        return StreamingResponse(
            endless.body(key, b'{"output":"'),
            status_code=status,
            media_type="application/json",
            headers={**(headers or {}), **extra},
        )

    return Starlette(routes=[Route("/model/{model}/{action}", model, methods=["POST"])])


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Endless]]:
    endless = Endless()
    with serve_app(_app(endless)) as url:
        yield url, endless


@pytest.fixture
def endless(upstream: tuple[str, Endless]) -> Iterator[tuple[str, Endless]]:
    before = limits.current()
    limits.configure(MAX_BODY, MAX_LINE)
    upstream[1].reset()
    yield upstream
    limits.configure(before.max_body_bytes, before.max_line_bytes)


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Static test credentials; no profile, config file or instance metadata is consulted."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDAISERVICETEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bedrock-test-secret-0123456789abcdef")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def provider(endless: tuple[str, Endless]) -> AsyncIterator[BedrockProvider]:
    config = ProviderSettings(type="bedrock", base_url=endless[0], region="us-east-1", timeout=10)
    bedrock = BedrockProvider("bedrock", config, SecretResolver(Settings()))
    yield bedrock
    await bedrock.aclose()


def _protocol_error(caught: pytest.ExceptionInfo[ProviderError], key: str) -> None:
    assert caught.value.kind == "protocol" and caught.value.provider == "bedrock"
    assert key in str(caught.value) and "over the limit" in str(caught.value)


@pytest.mark.parametrize("mode", ["endless", "declared", "error"])
async def test_an_oversize_converse_answer_is_a_protocol_error_cut_off_at_the_bound(
    provider: BedrockProvider, endless: tuple[str, Endless], mode: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.chat(mode, {"model": mode, "messages": USER})
    _protocol_error(caught, "max_upstream_body_bytes")
    sent = endless[1]
    sent.cut_off(f"{mode}/converse")
    if mode != "declared":  # refused on its header alone
        assert sent.sent[f"{mode}/converse"] > MAX_BODY


async def test_an_oversize_stream_event_is_refused_on_its_announced_length(
    provider: BedrockProvider, endless: tuple[str, Endless]
) -> None:
    chunks = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in provider.stream_chat("big", {"model": "big", "messages": USER}):
            chunks.append(chunk)
    _protocol_error(caught, "max_upstream_line_bytes")
    assert chunks and chunks[0]["choices"][0]["delta"]["role"] == "assistant"  # before it
    endless[1].cut_off("big/converse-stream")


async def test_an_oversize_invoke_model_body_is_a_protocol_error(
    provider: BedrockProvider, endless: tuple[str, Endless]
) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.embed(f"endless.{EMBED}", ["alpha"])
    _protocol_error(caught, "max_upstream_body_bytes")
    endless[1].cut_off(f"endless.{EMBED}/invoke")


async def test_the_gateway_answers_502_and_holds_about_the_bound(
    make_settings: Any, client_for: Any, endless: tuple[str, Endless]
) -> None:
    url, sent = endless
    provider = {"type": "bedrock", "base_url": url, "region": "us-east-1", "timeout": 10}
    config = {
        "providers": {"bedrock": provider},
        "models": {"m": [{"provider": "bedrock", "model": "endless"}]},
        "limits": {"max_upstream_body_bytes": MAX_BODY, "max_upstream_line_bytes": MAX_LINE},
        "cache": {"mode": "off"},
        "logging": {"level": "CRITICAL"},
    }
    tracemalloc.start()
    try:
        async with client_for(make_settings(config)) as http:
            answer = await http.post("/v1/chat/completions", json={"model": "m", "messages": USER})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["type"] == "upstream_error" and "max_upstream_body_bytes" in error["message"]
    sent.cut_off("endless/converse")
    assert peak < 16 * MAX_BODY, peak
    assert json.dumps(error).count("bedrock-test-secret") == 0


def test_a_client_without_botocores_private_session_still_works_unbounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Client:  # what a botocore release that moved ``_endpoint`` would look like
        pass

    client = Client()
    with caplog.at_level(logging.WARNING, logger="aiservice.providers"):
        bound_bodies(client)
    assert not hasattr(client, "_endpoint")
    assert "unbounded" in caplog.text

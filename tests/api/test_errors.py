"""Every error class the official SDK maps, with the status and envelope behind it."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from aiservice import Settings
from tests.providers.contract import Failure
from tests.support.llm_servers import (
    ADMIN_KEY,
    BACKUP_KEY,
    ENVIRON,
    PRIMARY_KEY,
    SdkFactory,
    Upstreams,
    llm_config,
)

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def settings(make_settings: Any, upstreams: Upstreams) -> Settings:
    settings: Settings = make_settings(llm_config(upstreams), ENVIRON)
    return settings


async def test_400_for_inconsistent_request(settings: Settings, sdk_for: SdkFactory) -> None:
    async with sdk_for(settings) as (sdk, _):
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.chat.completions.create(
                model="fake",
                messages=USER,
                tools=[{"type": "function", "function": {"name": "a"}}],
                tool_choice={"type": "function", "function": {"name": "b"}},
            )
        with pytest.raises(openai.BadRequestError) as empty:
            await sdk.chat.completions.create(model="fake", messages=[])
    assert info.value.status_code == 400
    assert info.value.body["param"] == "tool_choice"  # type: ignore[index]
    assert empty.value.body["param"] == "messages"  # type: ignore[index]


async def test_401_for_a_wrong_client_key(settings: Settings, sdk_for: SdkFactory) -> None:
    async with sdk_for(settings, api_key="wrong-key") as (sdk, _):
        with pytest.raises(openai.AuthenticationError) as info:
            await sdk.chat.completions.create(model="fake", messages=USER)
    assert info.value.code == "invalid_api_key"


async def test_403_for_admin_route_with_a_client_key(
    settings: Settings, sdk_for: SdkFactory
) -> None:
    async with sdk_for(settings) as (sdk, _):
        with pytest.raises(openai.PermissionDeniedError) as info:
            await sdk.post(
                "http://testserver/admin/models/pull", body={"model": "x"}, cast_to=object
            )
    assert info.value.status_code == 403


async def test_404_model_not_found(settings: Settings, sdk_for: SdkFactory) -> None:
    async with sdk_for(settings) as (sdk, _):
        with pytest.raises(openai.NotFoundError) as chat:
            await sdk.chat.completions.create(model="no-such-model", messages=USER)
        with pytest.raises(openai.NotFoundError) as unknown_provider:
            await sdk.embeddings.create(model="nobody/model", input="x")
        with pytest.raises(openai.NotFoundError) as retrieve:
            await sdk.models.retrieve("no-such-model")
    for error in (chat.value, unknown_provider.value, retrieve.value):
        assert error.code == "model_not_found" and error.param == "model"


async def test_422_for_a_body_of_the_wrong_types(settings: Settings, sdk_for: SdkFactory) -> None:
    async with sdk_for(settings) as (sdk, _):
        with pytest.raises(openai.UnprocessableEntityError) as info:
            await sdk.chat.completions.create(model="fake", messages=USER, temperature=7)
    assert info.value.status_code == 422 and "temperature" in info.value.message


async def test_429_when_every_deployment_is_rate_limited(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    upstreams.primary.inject(Failure(status=429, retry_after=0.05, message="slow down"))
    async with sdk_for(settings) as (sdk, _):
        with pytest.raises(openai.RateLimitError) as info:
            await sdk.chat.completions.create(model="solo", messages=USER)
    assert info.value.code == "upstream_rate_limited"
    assert info.value.response.headers["retry-after"] == "1"
    assert upstreams.primary.calls["/v1/chat/completions"] == 2  # one retry


async def test_502_for_upstream_errors_and_upstream_auth_without_the_key(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    async with sdk_for(settings) as (sdk, _):
        upstreams.primary.inject(Failure(status=500))
        with pytest.raises(openai.InternalServerError) as server:
            await sdk.chat.completions.create(model="solo", messages=USER)
        upstreams.primary.inject(Failure(status=401, message=f"Incorrect API key: {PRIMARY_KEY}"))
        with pytest.raises(openai.InternalServerError) as auth:
            await sdk.chat.completions.create(model="solo", messages=USER)
    assert server.value.status_code == 502 and server.value.code == "upstream_error"
    assert auth.value.status_code == 502 and auth.value.code == "upstream_auth_failed"
    assert "providers.primary.api_key" in auth.value.message
    assert PRIMARY_KEY not in auth.value.response.text


async def test_upstream_echoing_a_literal_key_is_redacted(
    make_settings: Any, upstreams: Upstreams, sdk_for: SdkFactory
) -> None:
    """A 400 from upstream keeps its message for the caller, minus the key."""
    settings = make_settings(llm_config(upstreams), ENVIRON)
    upstreams.backup.inject(Failure(status=400, message=f"bad key {BACKUP_KEY} for field"))
    async with sdk_for(settings) as (sdk, _):
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.chat.completions.create(model="backup/gpt", messages=USER)
    assert BACKUP_KEY not in info.value.response.text
    assert "for field" in info.value.message


async def test_503_when_every_deployment_is_cooling_down(
    make_settings: Any, upstreams: Upstreams, sdk_for: SdkFactory
) -> None:
    config = llm_config(upstreams, max_retries=0, failure_threshold=1, cooldown_seconds=60)
    upstreams.primary.inject(Failure(status=500))
    async with sdk_for(make_settings(config, ENVIRON)) as (sdk, _):
        with pytest.raises(openai.InternalServerError):
            await sdk.chat.completions.create(model="solo", messages=USER)
        with pytest.raises(openai.InternalServerError) as info:
            await sdk.chat.completions.create(model="solo", messages=USER)
    assert info.value.status_code == 503
    assert info.value.code == "deployments_cooling_down"
    assert int(info.value.response.headers["retry-after"]) > 50
    assert upstreams.primary.calls["/v1/chat/completions"] == 1


async def test_504_when_the_upstream_is_too_slow(
    make_settings: Any, upstreams: Upstreams, sdk_for: SdkFactory
) -> None:
    config = llm_config(upstreams, max_retries=0, timeout=0.3)
    upstreams.primary.inject(Failure(kind="slow"))
    async with sdk_for(make_settings(config, ENVIRON)) as (sdk, _):
        with pytest.raises(openai.InternalServerError) as info:
            await sdk.chat.completions.create(model="solo", messages=USER)
    assert info.value.status_code == 504 and info.value.code == "upstream_timeout"


async def test_502_when_the_upstream_is_unreachable(
    make_settings: Any, upstreams: Upstreams, sdk_for: SdkFactory
) -> None:
    from tests.support.servers import free_port

    config = llm_config(upstreams, max_retries=0)
    config["providers"]["primary"]["base_url"] = f"http://127.0.0.1:{free_port()}/v1"
    async with sdk_for(make_settings(config, ENVIRON)) as (sdk, _):
        with pytest.raises(openai.InternalServerError) as info:
            await sdk.chat.completions.create(model="solo", messages=USER)
    assert info.value.status_code == 502 and info.value.code == "upstream_unreachable"


async def test_admin_key_is_not_enough_without_the_route(
    settings: Settings, sdk_for: SdkFactory
) -> None:
    """Unknown /v1 routes are 404 with the envelope, not a crash."""
    async with sdk_for(settings, api_key=ADMIN_KEY) as (_, http):
        response = await http.get("/v1/nothing", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 404 and response.json()["error"]["type"]

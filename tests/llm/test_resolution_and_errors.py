"""Model resolution, startup validation and the provider-error → client-error table."""

from __future__ import annotations

from typing import Any

import pytest

from aiservice.config import Settings
from aiservice.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from aiservice.llm.build import build_gateway
from aiservice.llm.errors import client_error
from aiservice.providers.base import ProviderError
from aiservice.runtime import StartupError
from aiservice.secrets.base import SecretResolver


async def gateway_for(data: dict[str, Any], make_settings: Any) -> Any:
    settings: Settings = make_settings(data)
    return await build_gateway(settings, SecretResolver(settings))


async def test_public_names_resolve_in_order_and_direct_names_work(make_settings: Any) -> None:
    gateway = await gateway_for(
        {
            "providers": {"a": {"type": "fake"}, "b": {"type": "fake"}},
            "models": {"m": [{"provider": "a", "model": "x"}, {"provider": "b", "model": "y"}]},
        },
        make_settings,
    )
    assert [d.key for d in gateway.resolve("m")] == ["a/x", "b/y"]
    assert [d.key for d in gateway.resolve("b/some/nested-name")] == ["b/some/nested-name"]
    with pytest.raises(ModelNotFoundError) as info:
        gateway.resolve("c/x")
    assert info.value.code == "model_not_found" and "m" in info.value.message
    await gateway.aclose()


async def test_unknown_provider_type_fails_startup_naming_the_key(make_settings: Any) -> None:
    with pytest.raises(StartupError, match=r"providers\.mine\.type: unknown provider type"):
        await gateway_for({"providers": {"mine": {"type": "nope"}}}, make_settings)


async def test_model_on_unknown_provider_fails_startup(make_settings: Any) -> None:
    with pytest.raises(StartupError, match=r"models\.m: provider 'ghost'"):
        await gateway_for({"models": {"m": [{"provider": "ghost", "model": "x"}]}}, make_settings)


async def test_the_app_refuses_to_start_with_a_bad_model_table(
    make_settings: Any, client_for: Any
) -> None:
    settings = make_settings({"models": {"m": [{"provider": "ghost", "model": "x"}]}})
    with pytest.raises(StartupError):
        async with client_for(settings):
            pass


@pytest.mark.parametrize(
    ("error", "expected", "status"),
    [
        (ProviderError("x", kind="auth", status=401), UpstreamError, 502),
        (ProviderError("x", kind="auth", status=403), UpstreamError, 502),
        (ProviderError("x", kind="timeout"), UpstreamTimeoutError, 504),
        (ProviderError("x", status=504), UpstreamTimeoutError, 504),
        (ProviderError("x", status=429, retry_after=2.4), RateLimitError, 429),
        (ProviderError("x", status=400), InvalidRequestError, 400),
        (ProviderError("x", status=404), NotFoundError, 404),
        (ProviderError("x", kind="connect"), UpstreamError, 502),
        (ProviderError("x", status=503), ServiceUnavailableError, 503),
        (ProviderError("x", status=500), UpstreamError, 502),
        (ProviderError("x", kind="protocol"), UpstreamError, 502),
    ],
)
def test_client_error_mapping(error: ProviderError, expected: type, status: int) -> None:
    mapped = client_error(error, "p")
    assert type(mapped) is expected and mapped.status_code == status


def test_rate_limit_carries_retry_after_and_auth_hides_upstream_text() -> None:
    limited = client_error(ProviderError("x", status=429, retry_after=2.4), "p")
    assert limited.headers == {"retry-after": "2"}
    auth = client_error(ProviderError("key sk-abc is wrong", kind="auth", status=401), "p")
    assert "sk-abc" not in auth.message and "providers.p.api_key" in auth.message


async def test_a_stream_left_midway_is_accounted_once_with_an_estimate(make_settings: Any) -> None:
    """The per-chunk relay (providers without ``stream_chat_wire``): a consumer that stops
    before the usage chunk still reports the call; one that reads to the end reports the
    upstream's own usage, once."""
    from aiservice.llm.accounting import UsageRecord

    gateway = await gateway_for(
        {"providers": {"a": {"type": "fake"}}, "models": {"m": [{"provider": "a", "model": "x"}]}},
        make_settings,
    )
    records: list[UsageRecord] = []

    async def listener(record: UsageRecord) -> None:
        records.append(record)

    gateway.accountant.listeners.append(listener)
    prompt = "count to twenty, one number per line please"
    request = {"messages": [{"role": "user", "content": prompt}]}
    result = await gateway.stream("m", request, None)
    chunks = result.chunks
    assert result.batches is None  # the per-chunk path
    taken = [await anext(chunks) for _ in range(3)]
    assert len(taken) == 3 and not records
    await chunks.aclose()  # type: ignore[attr-defined]
    assert len(records) == 1
    assert records[0].input_tokens == (len(prompt) + 3) // 4
    assert records[0].output_tokens == 3

    whole = await gateway.stream("m", request, None)
    every = [chunk async for chunk in whole.chunks]
    usage = every[-1]["usage"]
    assert len(records) == 2
    assert records[1].output_tokens == usage["completion_tokens"]
    await gateway.aclose()

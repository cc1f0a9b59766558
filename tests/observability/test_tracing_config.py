"""The ``tracing`` section: environment variables, bounds, secret headers, install hint,
sampling."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from aiservice import Settings, create_app
from aiservice.errors import ConfigError
from tests.conftest import MakeSettings, app_client
from tests.observability.otlp_receiver import OtlpReceiver, otlp_receiver

CHAT = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


def test_environment_variables_and_defaults(make_settings: MakeSettings) -> None:
    assert make_settings().tracing.enabled is False
    settings = make_settings(
        environ={
            "AISERVICE_TRACING__ENABLED": "true",
            "AISERVICE_TRACING__SAMPLE_RATIO": "0.25",
            "AISERVICE_TRACING__EXPORTER__ENDPOINT": "http://collector:4318",
        }
    )
    tracing = settings.tracing
    assert (tracing.enabled, tracing.sample_ratio) == (True, 0.25)
    assert tracing.exporter.endpoint == "http://collector:4318"


@pytest.mark.parametrize("bad", [{"sample_ratio": 1.5}, {"exporter": {"nope": 1}}, {"x": 1}])
def test_invalid_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(tracing=bad)


async def test_secret_headers_are_resolved_for_the_exporter(
    make_settings: MakeSettings, otlp: OtlpReceiver
) -> None:
    config = {
        "enabled": True,
        "exporter": {"endpoint": otlp.url, "headers": {"authorization": "secret://env/OTLP"}},
    }
    settings = make_settings({"tracing": config}, {"OTLP": "Bearer t0ken"})
    async with app_client(settings) as client:
        assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200
    assert otlp.spans and {h["Authorization"] for h in otlp.headers} == {"Bearer t0ken"}


async def test_sample_ratio_zero_records_nothing_but_a_sampled_caller_wins(
    otlp: OtlpReceiver,
) -> None:
    settings = Settings(
        tracing={"enabled": True, "sample_ratio": 0, "exporter": {"endpoint": otlp.url}}
    )
    caller = {"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}
    async with app_client(settings) as client:
        unsampled = await client.post("/v1/chat/completions", json=CHAT)
        sampled = await client.post("/v1/chat/completions", json=CHAT, headers=caller)
    assert unsampled.status_code == sampled.status_code == 200
    assert {s.trace_id for s in otlp.spans} == {"1" * 32}


def test_missing_sdk_is_a_config_error_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http", None)
    with pytest.raises(ConfigError, match=r"tracing\.enabled.*aiservice\[otel\]"):
        create_app(Settings(tracing={"enabled": True}), configure_logs=False)
    with pytest.raises(ConfigError, match=r"metrics\.sink.*aiservice\[otel\]"):
        create_app(Settings(metrics={"sink": "otlp"}), configure_logs=False)

"""``/metrics`` leaves out the ``*_created`` series unless ``metrics.created_series``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
from prometheus_client import CollectorRegistry, Counter, generate_latest

from ..conftest import MakeSettings

ClientFor = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


async def _scrape(client_for: ClientFor, make_settings: MakeSettings, **metrics: bool) -> str:
    async with client_for(make_settings({"metrics": metrics})) as client:
        assert (await client.get("/health/live")).status_code == 200
        response = await client.get("/metrics")
        assert response.status_code == 200
        return response.text


async def test_created_series_are_left_out_by_default(
    client_for: ClientFor, make_settings: MakeSettings
) -> None:
    text = await _scrape(client_for, make_settings)
    assert 'aiservice_http_requests_total{method="GET"' in text
    assert "aiservice_http_request_duration_seconds_bucket" in text
    assert "_created" not in text


async def test_created_series_on_request_and_other_registries_untouched(
    client_for: ClientFor, make_settings: MakeSettings
) -> None:
    await _scrape(client_for, make_settings)  # a filtered scrape first
    text = await _scrape(client_for, make_settings, created_series=True)
    assert "aiservice_http_requests_created{" in text
    assert "aiservice_http_request_duration_seconds_created{" in text
    # The filter is ours alone: an embedding application's registry keeps its series.
    registry = CollectorRegistry()
    Counter("embedder_jobs", "jobs", registry=registry).inc()
    assert b"embedder_jobs_created" in generate_latest(registry)

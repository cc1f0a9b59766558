"""Executions are durable records: a state outage is a 503, never a silently lost run."""

from __future__ import annotations

from typing import Any

import pytest

from aiservice.cache.failopen import StateUnavailableError, StrictBackend
from aiservice.cache.memory import MemoryBackend

from ..support.servers import free_port
from .conftest import FlowSettings, orchestrator_app, step
from .support import Recorder


class _Down:
    name = "down"

    async def _fail(self, *args: Any) -> Any:
        raise ConnectionError("connection refused")

    get = set = add = delete = incr = consume = ping = _fail

    async def aclose(self) -> None:
        return None


async def test_strict_backend_passes_values_through_and_raises_503_on_failure(
    make_settings: Any,
) -> None:
    strict = StrictBackend(MemoryBackend(make_settings(), None), timeout=1.0)  # type: ignore[arg-type]
    await strict.set("k", b"v", 60)
    assert await strict.get("k") == b"v"
    assert await strict.add("k", b"w", 60) is False

    with pytest.raises(StateUnavailableError) as info:
        await StrictBackend(_Down(), timeout=1.0).set("k", b"v", 60)  # type: ignore[arg-type]
    assert info.value.status_code == 503
    assert "connection refused" not in info.value.message  # no backend internals to clients


async def test_orchestrate_with_state_backend_down_is_503_with_envelope(
    ml: tuple[str, Recorder], flow_settings: FlowSettings
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    flows = {"noop": {"steps": {"one": step(ml[0], "one")}}}
    settings = flow_settings(flows, cache={"backend": "redis", "url": dead, "timeout_ms": 100})
    async with orchestrator_app(settings) as (client, _):
        response = await client.post("/orchestrate/noop", json={})
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "state_unavailable"

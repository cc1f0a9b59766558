"""Seed-style ``POST /orchestrate``: the configured default flow, else the only flow."""

from __future__ import annotations

from typing import Any

import pytest

from aiservice import create_app
from aiservice.runtime import StartupError

from ..conftest import MakeSettings
from .conftest import FlowSettings, orchestrator_app, step

ML = tuple[str, Any]


def _flow(base: str, name: str) -> dict[str, Any]:
    return {"steps": {"s": step(base, name)}, "output": {"flow": name}}


async def test_default_flow_setting_picks_among_several(
    flow_settings: FlowSettings, ml: ML
) -> None:
    base, _ = ml
    settings = flow_settings(
        {"a": _flow(base, "a"), "b": _flow(base, "b")}, orchestrator={"default_flow": "b"}
    )
    async with orchestrator_app(settings) as (client, _):
        response = await client.post("/orchestrate", json={"user_id": "u-1"})
        explicit = await client.post("/orchestrate/a", json={})
    assert response.status_code == 200, response.text
    assert response.json()["flow"] == "b" and response.json()["output"] == {"flow": "b"}
    assert explicit.json()["flow"] == "a"


async def test_the_only_flow_is_the_default(flow_settings: FlowSettings, ml: ML) -> None:
    base, _ = ml
    async with orchestrator_app(flow_settings({"only": _flow(base, "only")})) as (client, _):
        response = await client.post("/orchestrate?mode=async", json={})
        assert response.status_code == 202
        assert response.json()["flow"] == "only"


async def test_several_flows_without_default_is_a_404_envelope(
    flow_settings: FlowSettings, ml: ML
) -> None:
    base, _ = ml
    settings = flow_settings({"a": _flow(base, "a"), "b": _flow(base, "b")})
    async with orchestrator_app(settings) as (client, _):
        response = await client.post("/orchestrate", json={})
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == "flow_not_found"
    assert "orchestrator.default_flow" in error["message"] and "2 flows" in error["message"]


async def test_no_flows_is_a_404_envelope(make_settings: MakeSettings) -> None:
    async with orchestrator_app(make_settings()) as (client, _):
        response = await client.post("/orchestrate", json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "flow_not_found"
    assert "no flows are configured" in response.json()["error"]["message"]


@pytest.mark.parametrize("with_flows", [True, False])
async def test_unknown_default_flow_stops_startup(
    flow_settings: FlowSettings, ml: ML, with_flows: bool
) -> None:
    base, _ = ml
    flows = {"a": _flow(base, "a")} if with_flows else {}
    app = create_app(
        flow_settings(flows, orchestrator={"default_flow": "nope"}), configure_logs=False
    )
    with pytest.raises(StartupError, match="orchestrator.default_flow: no flow named 'nope'"):
        async with app.router.lifespan_context(app):
            pytest.fail("the app must not start with an unknown default flow")

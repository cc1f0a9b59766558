"""POST /admin/models/pull: admin keys only, Ollama progress streamed as NDJSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiservice import Settings
from tests.providers.contract import Failure
from tests.support.llm_servers import ADMIN_KEY, CLIENT_KEY, ENVIRON, Upstreams, llm_config

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
PULL = "/admin/models/pull"


@pytest.fixture
def settings(make_settings: Any, upstreams: Upstreams) -> Settings:
    settings: Settings = make_settings(llm_config(upstreams), ENVIRON)
    return settings


async def test_pull_streams_progress_lines_until_success(
    settings: Settings, client_for: Any, upstreams: Upstreams
) -> None:
    async with client_for(settings) as http:
        response = await http.post(PULL, json={"model": "qwen2.5:0.5b"}, headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["x-aiservice-provider"] == "local"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0] == {"status": "pulling manifest"}
    assert [ln["completed"] for ln in lines if "completed" in ln] == [0, 512, 1024]
    assert lines[-1] == {"status": "success"}
    assert "qwen2.5:0.5b" in upstreams.ollama.installed


async def test_pull_without_stream_answers_the_final_status(
    settings: Settings, client_for: Any
) -> None:
    async with client_for(settings) as http:
        response = await http.post(
            PULL, json={"model": "tinyllama", "provider": "local", "stream": False}, headers=ADMIN
        )
    assert response.json() == {"status": "success", "model": "tinyllama", "provider": "local"}


async def test_pull_failure_midway_ends_with_an_error_line(
    settings: Settings, client_for: Any
) -> None:
    async with client_for(settings) as http:
        response = await http.post(PULL, json={"model": "missing-model"}, headers=ADMIN)
    last = json.loads(response.text.splitlines()[-1])
    assert last["error"]["code"] == "upstream_error"
    assert "file does not exist" in last["error"]["message"]


async def test_pull_failure_before_progress_is_an_http_error(
    settings: Settings, client_for: Any, upstreams: Upstreams
) -> None:
    upstreams.ollama.inject(Failure(status=500, message="disk full"))
    async with client_for(settings) as http:
        response = await http.post(PULL, json={"model": "llama3.2"}, headers=ADMIN)
    assert response.status_code == 502 and "disk full" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "x", "provider": "primary"}, "provider"),
        ({"model": "x", "provider": "nobody"}, "provider"),
    ],
)
async def test_pull_into_a_provider_that_cannot_pull_is_400(
    settings: Settings, client_for: Any, body: dict[str, str], param: str
) -> None:
    async with client_for(settings) as http:
        response = await http.post(PULL, json=body, headers=ADMIN)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


async def test_pull_rejects_model_names_that_are_not_names(
    settings: Settings, client_for: Any
) -> None:
    async with client_for(settings) as http:
        response = await http.post(PULL, json={"model": "../../etc; rm"}, headers=ADMIN)
    assert response.status_code == 422


async def test_pull_needs_an_admin_key(settings: Settings, client_for: Any) -> None:
    async with client_for(settings) as http:
        client = await http.post(
            PULL, json={"model": "x"}, headers={"authorization": f"Bearer {CLIENT_KEY}"}
        )
        anonymous = await http.post(PULL, json={"model": "x"})
    assert client.status_code == 403 and client.json()["error"]["code"] == "admin_required"
    assert anonymous.status_code == 401

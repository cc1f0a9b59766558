"""The shipped example (examples/) works end to end: seed 001's flow over its ML functions."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from aiservice.config import load_settings

from ..support.servers import serve_app
from .conftest import orchestrator_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example_app() -> Any:
    spec = importlib.util.spec_from_file_location(
        "example_ml_functions", EXAMPLES / "ml_functions.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_example_flow_runs_against_example_functions_and_webhook() -> None:
    module = _example_app()
    with serve_app(module.app) as url:
        functions = {
            "create_user_embeddings_url": f"{url}/create-user-embeddings",
            "match_candidato_url": f"{url}/match-candidato",
            "match_analysis_user_vacancy_url": f"{url}/match-analysis-user-vacancy",
        }
        environ = {
            "WEBHOOK_SECRET": module.DEMO_WEBHOOK_SECRET,
            "AISERVICE_FUNCTIONS": json.dumps(functions),
        }
        settings = load_settings(EXAMPLES / "aiservice.yaml", environ=environ, dotenv_file=None)
        payload = {
            "user_id": "test_user_123",
            "session_id": "test_session_456",
            "create_user_embedding": True,
            "process_profession_orchestrator": True,
            "process_vacancy_orchestrator": False,
            "callback_url": f"{url}/webhook",
        }
        async with orchestrator_app(settings) as (client, _):
            response = await client.post("/orchestrate/match_user", json=payload)
    doc = response.json()
    assert response.status_code == 200, doc
    assert doc["steps"]["embed"]["status"] == "succeeded"
    assert doc["steps"]["match_vacancy"]["status"] == "skipped"
    assert doc["output"]["professions"][0]["code"] == "2124"
    assert doc["output"]["vacancies"] is None
    assert doc["webhook"]["status"] == "delivered"  # the example receiver verified it

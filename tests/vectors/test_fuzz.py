"""Schemathesis over /v1/files and /v1/vector_stores with vector stores on: no 5xx, every
status and body as the OpenAPI document says (the app-wide fuzz test runs them off)."""

from __future__ import annotations

import collections
from typing import Any

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from aiservice import create_app

from ..conftest import MakeSettings
from .conftest import ADMIN_KEY


def test_vector_routes_conform(make_settings: MakeSettings, vector_config: dict[str, Any]) -> None:
    app = create_app(make_settings(vector_config), configure_logs=False)
    config = SchemathesisConfig.from_dict(
        {
            "seed": 20261127,
            "headers": {"Authorization": f"Bearer {ADMIN_KEY}"},
            "generation": {"max-examples": 10, "deterministic": True},
            # The stateful phase is random whatever the seed, and it sends multipart file
            # parts whose bytes happen to spell a number, which negative_data_rejection
            # then calls invalid ("-6741" is valid file content).
            "phases": {"stateful": {"enabled": False}},
            # Ids are opaque strings: random ones are 404, which the document declares.
            # (valid_data_accepted is the app-wide fuzz test's variant of that check,
            # registered globally once that module is imported.)
            "checks": {
                "positive_data_acceptance": {"enabled": False},
                "valid_data_accepted": {"enabled": False},
            },
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    schema = schema.include(path_regex=r"^/v1/(files|vector_stores)")
    failures: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    tested: set[str] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            tested.add(event.recorder.label)
            for case_id, results in event.recorder.checks.items():
                for check in results:
                    if check.status.name == "FAILURE":
                        response = event.recorder.interactions[case_id].response
                        detail = response.content[:200] if response is not None else b""
                        detail += repr(event.recorder.cases[case_id].value.body).encode()
                        failures[f"{event.recorder.label} {check.name}: {detail!r}"] += 1
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(repr(event))
    assert not errors, errors
    assert not failures, "\n".join(failures)
    assert "POST /v1/vector_stores/{vector_store_id}/search" in tested

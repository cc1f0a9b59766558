"""Schemathesis against the app in-process (ASGI): every phase, every check, auth on.

The engine the ``schemathesis run`` command uses: examples, coverage (boundary values,
missing and undeclared parameters, unsupported methods), fuzzing and stateful phases,
with a valid key; ``ignored_auth`` re-sends without a key and with a wrong one. Each
response must be declared (status, content type, schema, headers); no 5xx; valid data
accepted and invalid data rejected.
"""

from __future__ import annotations

import collections
from typing import Any

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from aiservice import create_app

from ..conftest import MakeSettings
from .conftest import ADMIN_KEY, edge_config

MAX_EXAMPLES = 15

# Rules between fields or against the configuration that JSON Schema cannot state: a
# tool_choice naming a function missing from tools; a model pull when no configured
# provider can pull. The service answers them 400 naming the field (documented).
CROSS_FIELD_PARAMS = {"tool_choice", "provider"}
# Embedding inputs × dimensions: each factor is bounded in the schema, their product can't be.
PRODUCT_LIMIT = "limits.requests.max_embedding_values"


@schemathesis.check
def valid_data_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, except a 400 for one of :data:`CROSS_FIELD_PARAMS`."""
    if response.status_code == 400:
        error = response.json()["error"]
        if error.get("param") in CROSS_FIELD_PARAMS or PRODUCT_LIMIT in error["message"]:
            return None
    return positive_data_acceptance(ctx, response, case)


def _config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": 20261127,
            "headers": {"Authorization": f"Bearer {ADMIN_KEY}"},
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "checks": {"positive_data_acceptance": {"enabled": False}},
        }
    )


def test_every_operation_conforms(make_settings: MakeSettings, edge_function_url: str) -> None:
    app = create_app(make_settings(edge_config(edge_function_url)), configure_logs=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config())
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert {"POST /orchestrate/greet", "POST /v1/chat/completions"} <= operations
    cases = 0
    tested: set[str] = set()
    failures: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    checks_run: set[str] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            cases += len(event.recorder.cases)
            tested.add(event.recorder.label)
            for case_id, results in event.recorder.checks.items():
                for check in results:
                    checks_run.add(check.name)
                    if check.status.name == "FAILURE":
                        response = event.recorder.interactions[case_id].response
                        detail = response.content[:160] if response is not None else b""
                        failures[f"{event.recorder.label} {check.name}: {detail!r}"] += 1
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(repr(event))
    total = sum(failures.values())
    print(f"schemathesis: {cases} cases over {len(operations)} operations, {total} failures")
    assert not errors, errors
    assert not failures, "\n".join(failures)
    assert operations <= tested  # plus the stateful scenarios
    expected_checks = {
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "valid_data_accepted",
        "ignored_auth",
    }
    assert expected_checks <= checks_run, expected_checks - checks_run

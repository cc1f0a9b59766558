"""Schemathesis against the app in-process (ASGI): every check, auth configured.

Every operation of the OpenAPI document gets positive and negative examples, sent with a
valid key; the ``ignored_auth`` check re-sends them without one and with a wrong one. Each
response must be declared (status, content type, schema, headers); no 5xx; valid data
accepted, invalid data rejected.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from aiservice import create_app

from ..conftest import MakeSettings
from .conftest import ADMIN_KEY, edge_config

MAX_EXAMPLES = 20
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}

# Rules between fields or against the configuration that JSON Schema cannot state: a
# tool_choice naming a function missing from tools; a model pull when no configured
# provider can pull. The service answers them 400 naming the field (documented).
CROSS_FIELD_PARAMS = {"tool_choice", "provider"}


@schemathesis.check
def valid_data_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, except a 400 for one of :data:`CROSS_FIELD_PARAMS`."""
    if response.status_code == 400:
        param = response.json()["error"]["param"]
        if param in CROSS_FIELD_PARAMS:
            return None
    return positive_data_acceptance(ctx, response, case)


def _fuzz(operation: Any, mode: GenerationMode, calls: list[str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            headers=AUTH,
            excluded_checks=[positive_data_acceptance],
            additional_checks=[valid_data_accepted],
        )
        calls.append(operation.label)

    run()


def test_every_operation_conforms(make_settings: MakeSettings, edge_function_url: str) -> None:
    app = create_app(make_settings(edge_config(edge_function_url)), configure_logs=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    calls: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        raw = operation.definition.raw
        takes_input = bool(raw.get("parameters") or raw.get("requestBody"))
        # An operation without any input has no invalid request to generate.
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if takes_input else [])
        for mode in modes:
            _fuzz(operation, mode, calls)
    labels = {op.label for op in operations}
    assert "POST /orchestrate/greet" in labels and "POST /v1/chat/completions" in labels
    assert set(calls) == labels, "every operation was exercised"
    print(f"schemathesis: {len(calls)} examples over {len(labels)} operations, 0 failures")

"""The one table from an error kind to the HTTP status, and the errors it builds."""

from __future__ import annotations

import pytest

from aiservice.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from aiservice.orchestrator.kinds import STATUS, ErrorKind

# Written out on purpose: changing a status is an API change and must change this test.
EXPECTED = {
    "flow_timeout": 504,
    "step_timeout": 504,
    "step_failed": 502,
    "worker_lost": 502,
    "cancelled": 502,
    "flow_gone": 502,
    "upstream_status": 502,
    "upstream_unreachable": 502,
    "response_too_large": 502,
    "url_not_allowed": 400,
    "auth_failed": 502,
    "request_not_built": 502,
    "invalid_input": 400,
    "flow_not_found": 404,
    "execution_not_found": 404,
    "idempotency_key_reused": 409,
    "state_unavailable": 503,
    "queue_unavailable": 503,
}

CLASS_BY_STATUS = {
    400: InvalidRequestError,
    404: NotFoundError,
    409: ConflictError,
    502: UpstreamError,
    503: ServiceUnavailableError,
    504: UpstreamTimeoutError,
}


def test_every_kind_has_exactly_the_documented_status() -> None:
    assert set(STATUS) == set(ErrorKind), "a kind without a status (or a stale entry)"
    assert {kind.value: status for kind, status in STATUS.items()} == EXPECTED


def test_the_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        STATUS[ErrorKind.STEP_FAILED] = 500  # type: ignore[index]


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_kind_builds_the_error_its_status_names_with_its_value_as_code(kind: ErrorKind) -> None:
    error = kind.error("what happened", param="field")
    assert kind.status == EXPECTED[kind.value]
    assert error.status_code == kind.status
    assert type(error) is CLASS_BY_STATUS[kind.status]
    body = error.to_body()["error"]
    assert body == {
        "message": "what happened",
        "type": CLASS_BY_STATUS[kind.status].error_type,
        "code": kind.value,
        "param": "field",
    }


def test_kinds_are_their_string_values_in_json() -> None:
    assert ErrorKind("step_timeout") is ErrorKind.STEP_TIMEOUT
    assert f"{ErrorKind.FLOW_TIMEOUT}" == "flow_timeout"


def test_every_kind_is_produced_by_a_real_failure_in_the_kind_tests() -> None:
    """A new kind needs a test in test_error_kinds.py that makes the failure happen."""
    from pathlib import Path

    text = (Path(__file__).parent / "test_error_kinds.py").read_text()
    untested = [kind.name for kind in ErrorKind if f"ErrorKind.{kind.name}" not in text]
    assert untested == []

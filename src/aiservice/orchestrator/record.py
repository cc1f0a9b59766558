"""The execution record: one typed document, stored in the state backend and shown to clients.

Clients see :meth:`ExecutionRecord.public`::

    {execution_id, flow, status, mode, created_at, updated_at, output, error,
     steps: {id: {status, attempts, duration_ms, http_status, error, output}}, webhook}

The stored form (:meth:`ExecutionRecord.dump`) adds what never leaves the service: the
request input (``_input``, needed to resume), the caller (``_principal``), the trace it
belongs to (``_trace``, a W3C ``traceparent``: a worker resuming it continues that trace) and
the error kinds (``error_kind`` on the record and on each step). Loading ignores fields it does not
know and defaults the ones it lacks, so a record written by an earlier or later version
still reads; a record from before error kinds has none (see :meth:`failure`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import AIServiceError
from .kinds import ErrorKind

__all__ = [
    "ExecutionRecord",
    "ExecutionStatus",
    "StepState",
    "StepStatus",
    "StepsView",
    "WebhookReport",
    "now",
]

ExecutionStatus = Literal["queued", "running", "succeeded", "failed"]
StepStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]

TERMINAL: tuple[ExecutionStatus, ...] = ("succeeded", "failed")
_PRIVATE = {"error_kind"}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Record(BaseModel):
    # Mutated in place while running; validated once, when read back from the store.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class StepState(_Record):
    status: StepStatus = "pending"
    attempts: int = 0
    duration_ms: float | None = None
    http_status: int | None = None
    error: str | None = None
    output: Any = None
    error_kind: ErrorKind | None = None

    def fail(self, kind: ErrorKind, error: str | None) -> None:
        self.status, self.error_kind, self.error = "failed", kind, error

    def cancel(self, error: str | None = None) -> None:
        self.status, self.error_kind = "cancelled", ErrorKind.CANCELLED
        if error is not None:
            self.error = error


class WebhookReport(_Record):
    status: Literal["delivered", "failed"] = "failed"
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None


class ExecutionRecord(_Record):
    execution_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    flow: str
    status: ExecutionStatus
    mode: Literal["sync", "async"] = "sync"
    created_at: str = Field(default_factory=now)
    updated_at: str = Field(default_factory=now)
    output: Any = None
    error: str | None = None
    steps: dict[str, StepState] = Field(default_factory=dict)
    webhook: WebhookReport | None = None
    error_kind: ErrorKind | None = None
    input: dict[str, Any] = Field(default_factory=dict, alias="_input")
    principal: str | None = Field(default=None, alias="_principal")
    trace: str | None = Field(default=None, alias="_trace")

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def fail(self, kind: ErrorKind, error: str) -> None:
        self.status, self.error_kind, self.error = "failed", kind, error

    def cancel_unfinished(self) -> None:
        """Steps that never ran or were cut short are ``cancelled``."""
        for state in self.steps.values():
            if state.status in ("pending", "running"):
                state.cancel()

    def failure(self) -> AIServiceError:
        """The error a failed execution answers with, chosen by its kind."""
        # A record stored before kinds existed has none: it answers as a failed step.
        kind = self.error_kind or ErrorKind.STEP_FAILED
        return kind.error(self.error or "execution failed")

    def public(self) -> dict[str, Any]:
        """The execution document as clients (and webhook receivers) see it."""
        return self.model_dump(
            mode="json",
            exclude={
                "input": True,
                "principal": True,
                "trace": True,
                **dict.fromkeys(_PRIVATE, True),
                "steps": {"__all__": _PRIVATE},
            },
        )

    def dump(self) -> bytes:
        """The stored form (JSON)."""
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def load(cls, raw: bytes | str) -> ExecutionRecord:
        return cls.model_validate_json(raw)


class StepsView(Mapping[str, Mapping[str, Any]]):
    """What templates see as ``steps``: the live step states, read as mappings.

    Live, not a copy: copying the states for every step made wide flows O(n^2).
    """

    __slots__ = ("_steps",)

    def __init__(self, steps: dict[str, StepState]) -> None:
        self._steps = steps

    def __getitem__(self, sid: str) -> Mapping[str, Any]:
        return _StepView(self._steps[sid])

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)


_STEP_FIELDS = tuple(name for name in StepState.model_fields if name not in _PRIVATE)


class _StepView(Mapping[str, Any]):
    __slots__ = ("_state",)

    def __init__(self, state: StepState) -> None:
        self._state = state

    def __getitem__(self, key: str) -> Any:
        if key not in _STEP_FIELDS:
            raise KeyError(key)
        return getattr(self._state, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_STEP_FIELDS)

    def __len__(self) -> int:
        return len(_STEP_FIELDS)

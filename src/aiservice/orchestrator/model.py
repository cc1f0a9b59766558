"""The flow model: what a flow file may say (pydantic specs) and its compiled form.

A :class:`FlowSpec` is the YAML as written; :func:`aiservice.orchestrator.loader.compile_flow`
turns it into a :class:`Flow` whose templates are parsed and whose graph is checked, so
nothing is parsed again per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .expr import Expr, Template
from .origin import Origin

__all__ = [
    "AuthSpec",
    "Flow",
    "FlowError",
    "FlowSpec",
    "InputSpec",
    "RetrySpec",
    "Step",
    "StepSpec",
    "WebhookSpec",
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetrySpec(_Spec):
    max_attempts: int = Field(3, ge=1, le=20)
    initial_delay: float = Field(0.5, ge=0)
    max_delay: float = Field(8.0, ge=0)
    multiplier: float = Field(2.0, ge=1)
    jitter: Literal["full", "none"] = "full"
    on_status: list[int] = Field(default_factory=lambda: [429, 500, 502, 503, 504])
    """Statuses worth another attempt; transport errors and timeouts are always retried."""


class AuthSpec(BaseModel):
    """``type`` picks the scheme; the other keys are validated by that scheme."""

    model_config = ConfigDict(extra="allow")
    type: str = "none"

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class StepSpec(_Spec):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    body: Any = None
    depends_on: list[str] = Field(default_factory=list)
    when: str | bool | None = None
    optional: bool = False
    timeout: float | None = Field(None, gt=0)
    """Seconds per attempt (default ``orchestrator.default_step_timeout``)."""
    retry: RetrySpec = Field(default_factory=RetrySpec)
    auth: AuthSpec = Field(default_factory=AuthSpec)


class InputProperty(_Spec):
    type: Literal["string", "integer", "number", "boolean", "object", "array", "null"] | None = None


class InputSpec(_Spec):
    """JSON-schema-ish request validation: required keys and per-key types."""

    required: list[str] = Field(default_factory=list)
    properties: dict[str, InputProperty] = Field(default_factory=dict)
    additional_properties: bool = Field(True, alias="additionalProperties")


_ALL_EVENTS: tuple[Literal["succeeded", "failed"], ...] = ("succeeded", "failed")


class WebhookSpec(_Spec):
    url: str
    secret: str | None = None
    """Signing key (usually ``secret://...``); Standard Webhooks ``whsec_`` keys accepted."""
    events: list[Literal["succeeded", "failed"]] = Field(default_factory=lambda: list(_ALL_EVENTS))


class FlowSpec(_Spec):
    description: str | None = None
    input: InputSpec = Field(default_factory=InputSpec)
    timeout: float = Field(540.0, gt=0)
    """Whole-flow deadline in seconds."""
    max_concurrency: int | None = Field(None, ge=1)
    steps: dict[str, StepSpec]
    output: Any = None
    webhook: WebhookSpec | None = None


@dataclass(frozen=True)
class FlowError:
    """One validation problem, located by flow, step and field."""

    flow: str
    message: str
    step: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = [f"flow {self.flow!r}"]
        if self.step:
            where.append(f"step {self.step!r}")
        if self.field:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}"


@dataclass(frozen=True)
class Step:
    id: str
    spec: StepSpec
    url: Template
    headers: Template
    query: Template
    body: Template
    when: Expr | None
    secrets: frozenset[tuple[str, ...]]
    """``secrets.*`` paths the step's templates read (resolved before rendering)."""
    origin: Origin | None
    """The origin the configuration fixes for the URL; ``None`` when the URL is built
    (from input, step outputs, secrets), which puts it under the strict SSRF guard."""

    @property
    def guarded(self) -> bool:
        return self.origin is None


@dataclass(frozen=True)
class Flow:
    name: str
    spec: FlowSpec
    steps: dict[str, Step]
    graph: dict[str, tuple[str, ...]]
    """Step id → its dependencies (the shape graphlib expects)."""
    output: Template
    webhook_url: Template | None = None
    webhook_origin: Origin | None = None
    """As :attr:`Step.origin`, for the webhook URL."""
    secrets: frozenset[tuple[str, ...]] = field(default_factory=frozenset)
    """Secret references used by ``output`` and the webhook URL."""

    @property
    def webhook_guarded(self) -> bool:
        return self.webhook_url is not None and self.webhook_origin is None

    def origins(self) -> set[Origin]:
        """Every literal origin the flow calls (steps and webhook)."""
        found = {step.origin for step in self.steps.values() if step.origin is not None}
        return found | ({self.webhook_origin} if self.webhook_origin is not None else set())

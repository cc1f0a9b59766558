"""``POST /orchestrate/{flow}``, ``POST /orchestrate`` and ``GET /executions/{id}``.

``POST /orchestrate`` runs the default flow: ``orchestrator.default_flow``, else the only
configured flow; with several flows and no default it is a 404 naming the setting.

Sync (default): runs the flow, delivers the webhook, then answers 200 with the execution
document — or, when it failed, the status its error kind maps to (502 a required step failed,
504 the flow or a step timed out; see :mod:`aiservice.orchestrator.kinds`) with the same
document plus the error envelope. Async (``Prefer: respond-async`` or ``?mode=async``):
202 with ``Location: /executions/{id}``; poll that URL for the same document.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from ..errors import AIServiceError, InvalidRequestError
from ..orchestrator.kinds import ErrorKind
from ..runtime import Runtime, StartupError
from .deps import CallerPrincipal, RuntimeDep
from .responses import ErrorDetail, errors
from .routing import JsonRoute

if TYPE_CHECKING:
    from ..orchestrator.record import ExecutionRecord
    from ..orchestrator.service import Orchestrator

__all__ = ["router", "start"]

router = APIRouter(tags=["orchestrator"], route_class=JsonRoute)

# The Runtime fields ``start`` sets and reads (see aiservice.app.start_hooks): executions
# are stored in the shared state.
PROVIDES = ("orchestrator",)
START_AFTER = ("state",)


class Execution(BaseModel):
    """The execution document (``GET /executions/{id}`` and the answer of a sync run)."""

    model_config = ConfigDict(extra="allow")

    execution_id: str
    flow: str
    status: Literal["queued", "running", "succeeded", "failed"]
    mode: Literal["sync", "async"]
    created_at: Any
    updated_at: Any
    output: Any = None
    error: Any = None
    steps: dict[str, Any]


class FailedExecution(Execution):
    """A failed sync run: the execution document, plus the error envelope's ``error``."""

    error: ErrorDetail


FLOW_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {"type": "object"}}},
    "description": "The flow's input (validated against its input block; empty means {})",
}
"""Generic body; the OpenAPI document replaces it by each flow's own input schema."""

_MAX_KEY = 255


async def start(runtime: Runtime) -> None:
    """Build the orchestrator only when flows are configured.

    A service without flows (an LLM gateway, a Lambda that only answers chat) never
    imports the executor, step auth or webhook machinery: cold start is a feature.
    """
    default = runtime.settings.orchestrator.default_flow
    if not runtime.settings.flows and not runtime.settings.flows_dir:
        if default is not None:
            raise StartupError(f"orchestrator.default_flow: no flow named {default!r} (no flows)")
        return
    from ..orchestrator.setup import start as start_orchestrator

    await start_orchestrator(runtime)
    names = _flow_names(runtime)
    if default is not None and default not in names:
        known = ", ".join(sorted(names)) or "none"
        raise StartupError(
            f"orchestrator.default_flow: no flow named {default!r} (configured: {known})"
        )


def _flow_names(runtime: Runtime) -> set[str]:
    """Every defined flow, valid or not (an invalid one is reported by readiness)."""
    orchestrator = runtime.orchestrator
    if orchestrator is None:  # no flows configured
        return set()
    return set(orchestrator.flows) | {e.flow for e in orchestrator.errors}


def _default_flow(runtime: Runtime) -> str:
    default = runtime.settings.orchestrator.default_flow
    if default is not None:
        return default
    names = _flow_names(runtime)
    if len(names) == 1:
        return next(iter(names))
    why = "no flows are configured" if not names else f"{len(names)} flows are configured"
    raise ErrorKind.FLOW_NOT_FOUND.error(
        f"no default flow ({why}): set orchestrator.default_flow or POST /orchestrate/{{flow}}"
    )


def _orchestrator(runtime: Runtime, missing: AIServiceError) -> Orchestrator:
    # A field access, not an import: this runs on every request.
    if runtime.orchestrator is None:
        raise missing
    return runtime.orchestrator


def _document_response(record: ExecutionRecord) -> JSONResponse:
    view = record.public()
    if record.status != "failed":
        return JSONResponse(view)
    exc = record.failure()  # its status comes from the record's error kind
    return JSONResponse({**view, **exc.to_body()}, status_code=exc.status_code)


async def _payload(request: Request) -> Any:
    # The route read and strictly parsed the body already (JsonRoute): no second parse.
    if not await request.body():
        return {}
    return await request.json()


Mode = Annotated[Literal["sync", "async"] | None, Query()]
OptionalHeader = Annotated[str | None, Header()]
IdempotencyKey = Annotated[
    str | None, Header(json_schema_extra={"minLength": 1, "maxLength": _MAX_KEY})
]

FLOW_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Execution, "description": "The flow ran (sync)"},
    202: {"model": Execution, "description": "Accepted (async); poll the Location URL"},
    404: errors(404)[404],
    409: errors(409)[409],
    502: {"model": FailedExecution, "description": "A required step failed"},
    503: errors(503)[503],
    504: {"model": FailedExecution, "description": "The flow or a step timed out"},
}


@router.post(
    "/orchestrate",
    summary="Run the default flow (orchestrator.default_flow)",
    response_model=None,
    responses=FLOW_RESPONSES,
    openapi_extra={"requestBody": FLOW_BODY},
)
async def orchestrate_default(
    request: Request,
    runtime: RuntimeDep,
    principal: CallerPrincipal,
    mode: Mode = None,
    prefer: OptionalHeader = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    flow = _default_flow(runtime)
    return await orchestrate(flow, request, runtime, principal, mode, prefer, idempotency_key)


@router.post(
    "/orchestrate/{flow}",
    summary="Run a flow (sync, or async with respond-async)",
    response_model=None,
    responses=FLOW_RESPONSES,
    openapi_extra={"requestBody": FLOW_BODY},
)
async def orchestrate(
    flow: str,
    request: Request,
    runtime: RuntimeDep,
    principal: CallerPrincipal,
    mode: Mode = None,
    prefer: OptionalHeader = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    if idempotency_key is not None and not 0 < len(idempotency_key) <= _MAX_KEY:
        raise InvalidRequestError(
            f"Idempotency-Key must be 1..{_MAX_KEY} characters", param="Idempotency-Key"
        )
    asynchronous = mode == "async" or (mode is None and "respond-async" in (prefer or "").lower())
    no_flows = ErrorKind.FLOW_NOT_FOUND.error(f"unknown flow {flow!r}: no flows are configured")
    record = await _orchestrator(runtime, no_flows).submit(
        flow,
        await _payload(request),
        principal=principal.name,
        asynchronous=asynchronous,
        idempotency_key=idempotency_key,
    )
    if not asynchronous:
        return _document_response(record)
    location = f"{request.scope.get('root_path', '')}/executions/{record.execution_id}"
    headers = {"Location": location, "Preference-Applied": "respond-async"}
    return JSONResponse(record.public(), status_code=202, headers=headers)


@router.get(
    "/executions/{execution_id}",
    summary="An execution document (poll async runs)",
    response_model=None,
    responses={200: {"model": Execution, "description": "The document"}, **errors(404, 503)},
)
async def get_execution(
    execution_id: str, runtime: RuntimeDep, principal: CallerPrincipal
) -> JSONResponse:
    missing = ErrorKind.EXECUTION_NOT_FOUND.error(f"no execution {execution_id!r}")
    orchestrator = _orchestrator(runtime, missing)
    record = await orchestrator.get(execution_id, principal.name, principal.admin)
    return JSONResponse(record.public())

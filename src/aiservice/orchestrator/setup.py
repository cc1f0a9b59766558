"""Builds the orchestrator once per app and registers its readiness check."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..cache.state import get_durable_state
from .loader import load_flows
from .service import Orchestrator
from .store import ExecutionStore

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["get_orchestrator", "start"]

log = logging.getLogger("aiservice.orchestrator")


async def start(runtime: Runtime) -> None:
    """Load and validate flows; invalid flows fail readiness but do not stop the app."""
    flows, errors = load_flows(runtime.settings)
    for error in errors:
        log.error("invalid flow: %s", error)
    # Not the fail-open view: a lost execution write must surface (503 / redelivery).
    store = ExecutionStore(get_durable_state(runtime), runtime.settings.orchestrator.execution_ttl)
    orchestrator = Orchestrator(runtime, flows, errors, store)
    runtime.orchestrator = orchestrator
    runtime.stack.push_async_callback(orchestrator.aclose)

    async def flows_valid() -> str:
        if errors:
            raise ValueError("; ".join(str(e) for e in errors))
        return f"{len(flows)} flow(s) valid"

    runtime.health.add("flows", flows_valid, required=True)


def get_orchestrator(runtime: Runtime) -> Orchestrator:
    orchestrator = runtime.orchestrator
    if orchestrator is None:
        raise RuntimeError("the orchestrator is not started: add 'aiservice.api.orchestrate'")
    return orchestrator

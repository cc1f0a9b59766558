"""The secret references flows use, wherever the flows come from (settings or flows_dir).

Listed through :data:`aiservice.secrets.base.REFERENCE_FINDERS`, so startup resolves them
(a missing one stops the app naming it, instead of failing a run after its steps),
``aiservice check`` reports them and ``aiservice render`` binds them on every platform.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..secrets.base import is_reference

if TYPE_CHECKING:
    from ..config import Settings
    from .model import Flow

__all__ = ["flow_references"]


def flow_references(settings: Settings) -> list[tuple[str, str]]:
    """``(flows.<flow>.<where>, reference)`` for every valid flow, in a stable order.

    Invalid flows are left out: they fail readiness with their own error and never run.
    """
    if not settings.flows and not settings.flows_dir:
        return []  # and the flow machinery is not imported: cold start
    from .loader import load_flows

    flows, _ = load_flows(settings)
    out: list[tuple[str, str]] = []
    for name in sorted(flows):
        out += _references(flows[name])
    return out


def _references(flow: Flow) -> list[tuple[str, str]]:
    from .loader import secret_ref

    base = f"flows.{flow.name}"
    out: list[tuple[str, str]] = []
    for sid, step in flow.steps.items():
        out += [(f"{base}.steps.{sid}", secret_ref(p)) for p in sorted(step.secrets)]
        for key, value in sorted(step.spec.auth.options().items()):
            if is_reference(value):
                out.append((f"{base}.steps.{sid}.auth.{key}", value))
    out += [(base, secret_ref(p)) for p in sorted(flow.secrets)]  # output and webhook.url
    webhook = flow.spec.webhook
    if webhook is not None and is_reference(webhook.secret):
        out.append((f"{base}.webhook.secret", str(webhook.secret)))
    return out

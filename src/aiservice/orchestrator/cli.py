"""``aiservice flows validate`` and ``aiservice flows graph FLOW`` (Mermaid)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import Settings

__all__ = ["mermaid", "register"]


def _settings(args: argparse.Namespace) -> Settings:
    from ..config.loader import settings_from_args

    return settings_from_args(args)


def cmd_validate(args: argparse.Namespace) -> int:
    from .loader import load_flows

    flows, errors = load_flows(_settings(args))
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        return 2
    names = ", ".join(sorted(flows)) or "none"
    print(f"{len(flows)} flow(s) valid: {names}")
    return 0


def _node_id(step: str) -> str:
    return "s_" + "".join(c if c.isalnum() else "_" for c in step)


def mermaid(flow: Any) -> str:
    """A Mermaid flowchart: optional steps dashed, conditional steps labelled."""
    lines = ["flowchart TD"]
    for sid, step in flow.steps.items():
        label = sid + (f"<br/>when: {step.spec.when}" if isinstance(step.spec.when, str) else "")
        label = label.replace('"', "'")
        shape = f'(["{label}"])' if step.spec.optional else f'["{label}"]'
        lines.append(f"    {_node_id(sid)}{shape}")
    for sid, deps in flow.graph.items():
        for dep in deps:
            arrow = "-.->" if flow.steps[dep].spec.optional else "-->"
            lines.append(f"    {_node_id(dep)} {arrow} {_node_id(sid)}")
    return "\n".join(lines)


def cmd_graph(args: argparse.Namespace) -> int:
    from .loader import load_flows

    flows, errors = load_flows(_settings(args))
    flow = flows.get(args.flow)
    if flow is None:
        for error in errors:
            if error.flow == args.flow:
                print(f"error: {error}", file=sys.stderr)
        if not any(e.flow == args.flow for e in errors):
            print(f"error: unknown flow {args.flow!r}", file=sys.stderr)
        return 2
    print(mermaid(flow))
    return 0


def register(subparsers: Any) -> None:
    flows = subparsers.add_parser("flows", help="validate and inspect orchestrator flows")
    sub = flows.add_subparsers(dest="flows_command", required=True, metavar="ACTION")
    validate = sub.add_parser("validate", help="check every flow; exit 2 on errors")
    graph = sub.add_parser("graph", help="print a flow as a Mermaid flowchart")
    graph.add_argument("flow", help="flow name")
    for parser, func in ((validate, cmd_validate), (graph, cmd_graph)):
        parser.add_argument("-c", "--config", help="YAML config file (default: ./aiservice.yaml)")
        parser.add_argument("-p", "--profile", help="profile overlay config/NAME.yaml")
        parser.set_defaults(func=func)

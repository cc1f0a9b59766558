"""Load flows from ``settings.flows`` and ``settings.flows_dir`` and validate them at load time.

Everything that can be known before a request is checked here, so a typo fails the CLI
(exit 2) or the readiness check instead of a production run: schema, unknown dependency,
cycle, bad template syntax, a reference to a step that is not an ancestor, an unknown
``settings.functions`` key, an unknown auth type or bad auth options. Each problem is a
:class:`~aiservice.orchestrator.model.FlowError` naming flow, step and field.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from .auth import validate_auth
from .expr import Expr, ExprError, Path, Template, compile_template, parse_expr
from .model import Flow, FlowError, FlowSpec, Step, StepSpec
from .origin import Origin, literal_origin

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["compile_flow", "load_flows", "secret_ref", "settings_scope"]

ROOTS = ("input", "steps", "settings", "secrets")
STEP_FIELDS = ("output", "status", "http_status", "error", "attempts")
SETTINGS_SECTIONS = ("functions", "service")


def settings_scope(settings: Settings) -> dict[str, Any]:
    """What ``settings.*`` exposes to templates (never keys or credentials)."""
    return {"functions": settings.functions, "service": {"name": settings.service.name}}


def secret_ref(parts: tuple[str, ...]) -> str:
    """``secrets.env.NAME`` (parts ``("env", "NAME")``) → ``secret://env/NAME``."""
    return "secret://" + "/".join(parts)


def _secret_paths(paths: Iterable[Path]) -> set[tuple[str, ...]]:
    return {tuple(str(p) for p in path.parts) for path in paths if path.root == "secrets"}


def _raw_flows(settings: Settings, errors: list[FlowError]) -> Iterator[tuple[str, Any]]:
    yield from settings.flows.items()
    if not settings.flows_dir:
        return
    folder = FsPath(settings.flows_dir)
    if not folder.is_absolute() and settings.sources:
        # Relative to the config file, so the service can start from any directory.
        folder = FsPath(settings.sources[0]).parent / folder
    if not folder.is_dir():
        errors.append(FlowError("*", f"flows_dir {str(folder)!r} is not a directory"))
        return
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            errors.append(FlowError(path.stem, f"cannot read {path}: {exc}"))
            continue
        if isinstance(data, Mapping) and isinstance(data.get("flows"), Mapping):
            yield from data["flows"].items()  # a file holding several flows
        else:
            yield path.stem, data


def load_flows(settings: Settings) -> tuple[dict[str, Flow], list[FlowError]]:
    """Every valid flow by name, and every problem found (empty when all are valid)."""
    flows: dict[str, Flow] = {}
    errors: list[FlowError] = []
    for name, data in _raw_flows(settings, errors):
        if name in flows:
            errors.append(FlowError(name, "defined twice (settings.flows and flows_dir)"))
            continue
        flow, problems = compile_flow(name, data, settings)
        errors.extend(problems)
        if flow is not None and not problems:
            flows[name] = flow
    return flows, errors


def _schema_errors(name: str, exc: ValidationError) -> list[FlowError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        step = loc[1] if len(loc) > 1 and loc[0] == "steps" else None
        rest = loc[2:] if step else loc
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append(FlowError(name, message, step, ".".join(rest) or None))
    return out


def compile_flow(name: str, data: Any, settings: Settings) -> tuple[Flow | None, list[FlowError]]:
    """Validate and compile one flow; returns ``(flow, [])`` or ``(None | flow, errors)``."""
    if not isinstance(data, Mapping):
        return None, [FlowError(name, "a flow must be a mapping with 'steps'")]
    try:
        spec = FlowSpec.model_validate(data)
    except ValidationError as exc:
        return None, _schema_errors(name, exc)
    if not spec.steps:
        return None, [FlowError(name, "a flow needs at least one step", field="steps")]
    errors: list[FlowError] = []
    graph = {sid: tuple(step.depends_on) for sid, step in spec.steps.items()}
    for sid, deps in graph.items():
        for dep in deps:
            if dep not in graph:
                errors.append(FlowError(name, f"unknown dependency {dep!r}", sid, "depends_on"))
    if errors:
        return None, errors
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        return None, [FlowError(name, f"dependency cycle: {cycle}", exc.args[1][0], "depends_on")]
    ancestors = _ancestors(graph)
    checker = _RefChecker(name, settings, set(graph), errors)
    steps = {
        sid: _compile_step(sid, step, ancestors[sid], checker) for sid, step in spec.steps.items()
    }
    output = checker.template(spec.output, None, "output", set(graph))
    webhook_url: Template | None = None
    flow_secrets = _secret_paths(output.paths())
    if spec.webhook is not None:
        webhook_url = checker.url(spec.webhook.url, None, "webhook.url", set(graph))
        flow_secrets |= _secret_paths(webhook_url.paths())
    flow = Flow(
        name=name,
        spec=spec,
        steps=steps,
        graph=graph,
        output=output,
        webhook_url=webhook_url,
        webhook_origin=checker.origin(webhook_url) if webhook_url is not None else None,
        secrets=frozenset(flow_secrets),
    )
    return flow, errors


def _ancestors(graph: Mapping[str, tuple[str, ...]]) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for sid in graphlib.TopologicalSorter(graph).static_order():
        result[sid] = set()
        for dep in graph[sid]:
            result[sid] |= {dep, *result[dep]}
    return result


def _compile_step(sid: str, spec: StepSpec, visible: set[str], checker: _RefChecker) -> Step:
    url = checker.url(spec.url, sid, "url", visible)
    headers = checker.template(spec.headers, sid, "headers", visible)
    query = checker.template(spec.query, sid, "query", visible)
    body = checker.template(spec.body, sid, "body", visible)
    when = checker.condition(spec.when, sid, visible)
    for problem in validate_auth(spec.auth.type, spec.auth.options()):
        checker.errors.append(FlowError(checker.flow, problem[1], sid, f"auth{problem[0]}"))
    paths = [*url.paths(), *headers.paths(), *query.paths(), *body.paths()]
    if when is not None:
        paths += list(when.paths())
    return Step(
        id=sid,
        spec=spec,
        url=url,
        headers=headers,
        query=query,
        body=body,
        when=when,
        secrets=frozenset(_secret_paths(paths)),
        origin=checker.origin(url),
    )


class _RefChecker:
    """Compiles templates and checks every path they read; collects errors."""

    def __init__(self, flow: str, settings: Settings, steps: set[str], errors: list[FlowError]):
        self.flow = flow
        self.scope = settings_scope(settings)
        self.steps = steps
        self.errors = errors

    def template(self, value: Any, step: str | None, field: str, visible: set[str]) -> Template:
        try:
            template = compile_template(value)
        except ExprError as exc:
            self.errors.append(FlowError(self.flow, f"bad template: {exc}", step, field))
            return compile_template(None)
        self.check(template.paths(), step, field, visible)
        return template

    def url(self, value: Any, step: str | None, field: str, visible: set[str]) -> Template:
        """A URL template; one fully written out must be an absolute http(s) URL."""
        template = self.template(value, step, field, visible)
        text, complete = template.static_prefix({"settings": self.scope})
        if complete and text and self.origin(template) is None:
            problem = f"{text!r} is not an absolute http(s) URL"
            self.errors.append(FlowError(self.flow, problem, step, field))
        return template

    def origin(self, template: Template) -> Origin | None:
        return literal_origin(template, self.scope)

    def condition(self, value: str | bool | None, step: str, visible: set[str]) -> Expr | None:
        if value is None or isinstance(value, bool):
            return None if value in (None, True) else parse_expr("false")
        try:
            expr = parse_expr(value[2:-1] if value.startswith("${") else value)
        except ExprError as exc:
            self.errors.append(FlowError(self.flow, f"bad expression: {exc}", step, "when"))
            return None
        self.check(expr.paths(), step, "when", visible)
        return expr

    def check(self, paths: Iterable[Path], step: str | None, field: str, visible: set[str]) -> None:
        for path in paths:
            problem = self._problem(path, step, visible)
            if problem:
                self.errors.append(FlowError(self.flow, f"{path}: {problem}", step, field))

    def _problem(self, path: Path, step: str | None, visible: set[str]) -> str | None:
        if path.root not in ROOTS:
            return f"unknown root {path.root!r} (use one of {', '.join(ROOTS)})"
        parts = path.parts
        if path.root == "steps":
            if not parts or parts[0] not in self.steps:
                return f"unknown step {parts[0] if parts else ''!r}"
            if parts[0] not in visible:
                return f"step {parts[0]!r} is not an ancestor of {step!r} (add it to depends_on)"
            if len(parts) < 2 or parts[1] not in STEP_FIELDS:
                return f"use steps.{parts[0]}.<{'|'.join(STEP_FIELDS)}>"
        if path.root == "settings":
            if not parts or parts[0] not in SETTINGS_SECTIONS:
                return f"only settings.{{{','.join(SETTINGS_SECTIONS)}}} are readable"
            if (
                parts[0] == "functions"
                and len(parts) > 1
                and parts[1] not in self.scope["functions"]
            ):
                return "is not configured (add it under 'functions:')"
        if path.root == "secrets" and len(parts) < 2:
            return "use secrets.<source>.<name> (e.g. secrets.env.API_TOKEN)"
        return None

"""The OpenAPI document, completed with what the HTTP edge does around the routes.

FastAPI documents a route's own parameters, body and declared responses. Everything the
edge adds is derived here from the same facts the edge acts on, so the document cannot
drift from the behaviour:

* every status with the error envelope: 400/408/413/415/422 for a route that takes a body
  (:mod:`aiservice.api.routing`, :mod:`aiservice.security.body_limit`), 422 wherever FastAPI
  validates parameters (in the envelope shape :mod:`aiservice.api.errors` really sends,
  not FastAPI's ``HTTPValidationError``), the statuses of each dependency a route uses
  (:data:`DEPENDENCY_ERRORS`), and 500 everywhere;
* ``securitySchemes`` (bearer and ``X-API-Key``) on every route the auth gate protects,
  with 401 (and 403 for admin routes), when keys are configured;
* one ``/orchestrate/<flow>`` path per configured flow, whose body schema is the flow's
  ``input`` block (:func:`aiservice.orchestrator.inputs.input_schema`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from ..config import Settings
from ..config.sections import RequestLimits
from ..error_shapes import is_anthropic_path
from ..security.auth_gate import Protection
from .deps import api_routes, dependency_calls, route_protection
from .responses import STATUS_DESCRIPTIONS, ErrorResponse
from .routing import BODY_METHODS

__all__ = ["build_openapi", "dependency_errors", "install_openapi"]


def dependency_errors() -> dict[Callable[..., Any], tuple[int, ...]]:
    """Statuses a dependency answers on its own, added to every route that uses it."""
    # Imported here: the document is built once, on demand, not when the app is imported.
    from .openai_compat import get_gateway
    from .ratelimit import enforce_rate_limits

    return {
        enforce_rate_limits: (429, 503),  # over a limit; the limits backend down (deny mode)
        get_gateway: (503,),  # the gateway not started
    }


BODY_ERRORS = (400, 408, 413, 415, 422)
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
_ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorResponse"}
# The Anthropic Messages API routes answer errors in Anthropic's body (error_shapes).
_ANTHROPIC_REF = {"$ref": "#/components/schemas/AnthropicErrorResponse"}


def _envelope(status: int, ref: dict[str, str] = _ENVELOPE_REF) -> dict[str, Any]:
    return {
        "description": STATUS_DESCRIPTIONS[status],
        "content": {"application/json": {"schema": ref}},
    }


def _auth_configured(settings: Settings) -> bool:
    auth = settings.auth
    return bool(auth.api_keys or auth.admin_keys or auth.keys)


def _route_errors(
    route: APIRoute, settings: Settings, by_dependency: dict[Callable[..., Any], tuple[int, ...]]
) -> tuple[set[int], Protection]:
    statuses = {500}
    if (route.methods or set()) & BODY_METHODS:
        statuses.update(BODY_ERRORS)
    if route.dependant.path_params or route.dependant.query_params:
        statuses.add(422)
    if route.dependant.header_params:
        statuses.update((400, 422))
    for call in dependency_calls(route):
        statuses.update(by_dependency.get(call, ()))
    protection = route_protection(route, settings)
    if protection is Protection.ADMIN:
        statuses.add(403)  # also without keys: admin endpoints are then disabled
    if protection is not Protection.PUBLIC and _auth_configured(settings):
        statuses.add(401)
    return statuses, protection


def _complete_operation(
    operation: dict[str, Any],
    statuses: set[int],
    protection: Protection,
    secured: bool,
    ref: dict[str, str] = _ENVELOPE_REF,
) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    declared = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
    for status in sorted(statuses | declared):
        # Replaces FastAPI's 422 (HTTPValidationError), and on routes with another error
        # body every error the route declared: the body given here is what is sent.
        if str(status) not in responses or status == 422 or ref is not _ENVELOPE_REF:
            responses[str(status)] = _envelope(status, ref)
    if protection is not Protection.PUBLIC and secured:
        operation["security"] = [{name: []} for name in SECURITY_SCHEMES]


def _flow_paths(settings: Settings, generic: dict[str, Any]) -> dict[str, Any]:
    """``/orchestrate/<flow>`` for each valid flow, its body derived from its input block."""
    from ..orchestrator.inputs import input_schema
    from ..orchestrator.loader import load_flows

    flows, _ = load_flows(settings)
    paths: dict[str, Any] = {}
    for name, flow in sorted(flows.items()):
        operation = copy.deepcopy(generic)
        operation["operationId"] = f"run_flow_{name}"
        operation["summary"] = f"Run flow {name!r}"
        if flow.spec.description:
            operation["description"] = flow.spec.description
        operation["parameters"] = [
            p for p in operation.get("parameters", []) if p.get("in") != "path"
        ]
        schema = input_schema(flow.spec.input)
        operation["requestBody"] = {
            "required": bool(flow.spec.input.required),
            "content": {"application/json": {"schema": schema}},
        }
        paths[f"/orchestrate/{quote(name, safe='')}"] = {"post": operation}
    return paths


def _bound(prop: dict[str, Any], kind: str, key: str, value: int) -> None:
    """Set ``key`` on the ``kind`` branch(es) of a property schema (plain or ``anyOf``)."""
    for branch in [prop, *prop.get("anyOf", ())]:
        if branch.get("type") == kind:
            branch[key] = min(value, branch.get(key, value))


def _request_limits(schemas: dict[str, Any], limits: RequestLimits) -> None:
    """The configured ``limits.requests`` caps as schema bounds, so a client generated
    from the document (or a fuzzer) knows a request over them is invalid. Inputs ×
    dimensions of embeddings is a product JSON Schema cannot state (docs/api.md)."""
    chat = schemas.get("ChatCompletionRequest", {}).get("properties", {})
    embed = schemas.get("EmbeddingsRequest", {}).get("properties", {})
    bounds = [
        (chat.get("messages"), "array", "maxItems", limits.max_messages),
        (chat.get("tools"), "array", "maxItems", limits.max_tools),
        (chat.get("n"), "integer", "maximum", limits.max_n),
        (chat.get("max_tokens"), "integer", "maximum", limits.max_tokens),
        (chat.get("max_completion_tokens"), "integer", "maximum", limits.max_tokens),
        (embed.get("dimensions"), "integer", "maximum", limits.max_embedding_dimensions),
        (embed.get("input"), "array", "maxItems", limits.max_embedding_inputs),
    ]
    for prop, kind, key, value in bounds:
        if prop is not None:
            _bound(prop, kind, key, value)


def build_openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    from .anthropic_schemas import AnthropicErrorResponse  # with its routes: not at startup

    schema = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
        servers=app.servers,
    )
    secured = _auth_configured(settings)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    envelope = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(envelope.pop("$defs", {}))
    schemas.setdefault("ErrorResponse", envelope)
    schemas.setdefault(
        "AnthropicErrorResponse",
        AnthropicErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}"),
    )
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    _request_limits(schemas, settings.limits.requests)
    if secured:
        components["securitySchemes"] = SECURITY_SCHEMES
    paths: dict[str, Any] = schema.setdefault("paths", {})
    by_dependency = dependency_errors()
    for context, route in api_routes(app.routes):
        if not context.include_in_schema:
            continue
        statuses, protection = _route_errors(route, settings, by_dependency)
        path = context.path_format or ""
        ref = _ANTHROPIC_REF if is_anthropic_path(path) else _ENVELOPE_REF
        for method in context.methods or ():
            operation = paths.get(path, {}).get(method.lower())
            if operation is not None:
                _complete_operation(operation, statuses, protection, secured, ref)
    generic = paths.get("/orchestrate/{flow}", {}).get("post")
    if generic is not None:
        flow_paths = _flow_paths(settings, generic)
        if flow_paths:
            del paths["/orchestrate/{flow}"]
            paths.update(flow_paths)
    return schema


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Serve :func:`build_openapi` at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

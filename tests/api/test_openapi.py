"""The OpenAPI document states what the edge really does."""

from __future__ import annotations

from typing import Any

import httpx

from aiservice import create_app

from ..conftest import MakeSettings

CLIENT_KEY = "openapi-client-key-3c9e1a7f5b2d8046"
ADMIN_KEY = "openapi-admin-key-8b1d4f6a2c9e7035"

FLOW = {
    "input": {
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "n": {"type": "integer"}},
        "additionalProperties": False,
    },
    "steps": {"s": {"url": "http://127.0.0.1:9/never-called"}},
}


async def _document(make_settings: MakeSettings, config: dict[str, Any]) -> dict[str, Any]:
    app = create_app(make_settings(config), configure_logs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_errors_security_models_and_flows(make_settings: MakeSettings) -> None:
    doc = await _document(
        make_settings,
        {"auth": {"api_keys": [CLIENT_KEY], "admin_keys": [ADMIN_KEY]}, "flows": {"greet": FLOW}},
    )
    paths = doc["paths"]
    envelope = {"$ref": "#/components/schemas/ErrorResponse"}
    chat = paths["/v1/chat/completions"]["post"]
    for status in ("400", "401", "404", "408", "413", "415", "422", "429", "500", "502"):
        assert chat["responses"][status]["content"]["application/json"]["schema"] == envelope
    ok = chat["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    assert "text/event-stream" in ok
    assert chat["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]
    assert set(doc["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert "403" in paths["/admin/models/pull"]["post"]["responses"]
    assert "security" not in paths["/health/live"]["get"]
    models = paths["/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]
    assert models["schema"] == {"$ref": "#/components/schemas/ModelList"}
    # One path per flow, its body derived from the flow's input block.
    assert "/orchestrate/{flow}" not in paths
    body = paths["/orchestrate/greet"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert body["required"] is True
    assert schema["required"] == ["name"] and schema["additionalProperties"] is False
    assert schema["properties"]["n"] == {"type": "integer"}


async def test_open_service_declares_no_security(make_settings: MakeSettings) -> None:
    doc = await _document(make_settings, {})
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert "security" not in chat and "401" not in chat["responses"]
    assert "securitySchemes" not in doc["components"]
    # Without flows the generic route is documented (it answers 404 flow_not_found).
    assert "404" in doc["paths"]["/orchestrate/{flow}"]["post"]["responses"]


async def test_unknown_content_type_is_415_everywhere(make_settings: MakeSettings) -> None:
    app = create_app(make_settings({"flows": {"greet": FLOW}}), configure_logs=False)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in ("/v1/chat/completions", "/v1/embeddings", "/orchestrate/greet"):
                for content_type in ("text/plain", None):
                    headers = {"content-type": content_type} if content_type else {}
                    response = await client.post(path, content=b'{"a": 1}', headers=headers)
                    assert response.status_code == 415, (path, content_type)
                    assert response.json()["error"]["code"] == "unsupported_media_type"
                vendor = await client.post(
                    path, content=b"[1]", headers={"content-type": "application/vnd.x+json"}
                )
                assert vendor.status_code == 400  # +json is JSON: parsed, then refused


async def test_request_limits_are_schema_bounds(make_settings: MakeSettings) -> None:
    limits = {
        "max_messages": 7,
        "max_tools": 3,
        "max_n": 2,
        "max_tokens": 99,
        "max_embedding_inputs": 5,
        "max_embedding_dimensions": 64,
    }
    doc = await _document(make_settings, {"limits": {"requests": limits}})
    schemas = doc["components"]["schemas"]
    chat, embed = (
        schemas["ChatCompletionRequest"]["properties"],
        schemas["EmbeddingsRequest"]["properties"],
    )

    def bound(prop: dict[str, Any], key: str) -> list[int]:
        return [b[key] for b in [prop, *prop.get("anyOf", [])] if key in b]

    assert bound(chat["messages"], "maxItems") == [7]
    assert bound(chat["tools"], "maxItems") == [3]
    assert bound(chat["n"], "maximum") == [2]
    assert bound(chat["max_tokens"], "maximum") == [99]
    assert bound(chat["max_completion_tokens"], "maximum") == [99]
    assert bound(embed["dimensions"], "maximum") == [64]
    assert bound(embed["input"], "maxItems") and set(bound(embed["input"], "maxItems")) == {5}

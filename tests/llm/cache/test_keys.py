"""Cache keys change with everything that changes the answer, and with nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from aiservice.llm.cache.keys import chat_key, embedding_key, lease_key

BASE: dict[str, Any] = {
    "messages": [{"role": "user", "content": "hello"}],
    "temperature": 0,
}

CHANGES: list[tuple[str, Any]] = [
    ("messages", [{"role": "user", "content": "hello!"}]),
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ("tool_choice", "required"),
    ("response_format", {"type": "json_object"}),
    ("temperature", 0.5),
    ("top_p", 0.9),
    ("max_tokens", 10),
    ("stop", ["\n"]),
    ("seed", 7),
    ("n", 2),
    ("reasoning_effort", "high"),
    ("logit_bias", {"50256": -100}),
    ("some_future_parameter", True),
]


def key(request: dict[str, Any], provider: str = "p", model: str = "m", ns: str = "ns") -> str:
    return chat_key(provider, model, request, ns)


@pytest.mark.parametrize(("field", "value"), CHANGES, ids=[c[0] for c in CHANGES])
def test_every_answer_changing_field_changes_the_key(field: str, value: Any) -> None:
    assert key({**BASE, field: value}) != key(BASE)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stream", True),
        ("stream_options", {"include_usage": True}),
        ("user", "u-1"),
        ("model", "x"),
    ],
)
def test_transport_and_identity_fields_do_not_change_the_key(field: str, value: Any) -> None:
    assert key({**BASE, field: value}) == key(BASE)


def test_resolved_deployment_namespace_change_the_key() -> None:
    assert key(BASE, provider="other") != key(BASE)
    assert key(BASE, model="other") != key(BASE)
    assert key(BASE, ns="other") != key(BASE)


def test_key_is_canonical_over_order_spelling_and_integral_floats() -> None:
    reordered = {"temperature": 0.0, "messages": [{"content": "hello", "role": "user"}]}
    assert key(reordered) == key(BASE)
    assert key({**BASE, "max_completion_tokens": 5}) == key({**BASE, "max_tokens": 5})
    assert key({**BASE, "top_p": None}) == key(BASE)


def test_key_is_a_fixed_length_hash_that_hides_the_prompt() -> None:
    k = key({**BASE, "messages": [{"role": "user", "content": "secret prompt"}]})
    assert k.startswith("llm:") and len(k) == 4 + 64
    assert "secret" not in k


def test_embedding_keys_differ_by_text_model_and_dimensions() -> None:
    base = embedding_key("p", "m", "text", None)
    assert embedding_key("p", "m", "text", None) == base
    assert embedding_key("p", "m", "text2", None) != base
    assert embedding_key("p", "m2", "text", None) != base
    assert embedding_key("p", "m", "text", 8) != base
    assert lease_key(base) == "lease:" + base

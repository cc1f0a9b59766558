"""OpenAI ``filters`` → backend-neutral filters, and file attributes (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from aiservice.errors import InvalidRequestError
from aiservice.vectors.base import AttributeType, Comparison, Compound
from aiservice.vectors.filters import MAX_DEPTH, check_attributes, parse_filters

ATTRS: dict[str, AttributeType] = {
    "topic": "keyword",
    "year": "integer",
    "w": "float",
    "ok": "bool",
}


def test_comparisons_map_attributes_under_their_payload_key() -> None:
    assert parse_filters({"type": "eq", "key": "topic", "value": "a"}, ATTRS) == Comparison(
        "attributes.topic", "eq", "a"
    )
    assert parse_filters({"type": "eq", "key": "file_id", "value": "f"}, ATTRS) == Comparison(
        "file_id", "eq", "f"
    )
    assert parse_filters({"type": "lte", "key": "w", "value": 2}, ATTRS) == Comparison(
        "attributes.w", "lte", 2
    )
    assert parse_filters(None, ATTRS) is None


def test_compounds_nest() -> None:
    raw = {
        "type": "and",
        "filters": [
            {"type": "in", "key": "topic", "value": ["a", "b"]},
            {"type": "or", "filters": [{"type": "eq", "key": "ok", "value": True}]},
        ],
    }
    assert parse_filters(raw, ATTRS) == Compound(
        "and",
        (
            Comparison("attributes.topic", "in", ["a", "b"]),
            Compound("or", (Comparison("attributes.ok", "eq", True),)),
        ),
    )


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"type": "eq", "key": 3, "value": "a"},
        {"type": "eq", "key": "year", "value": True},  # a bool is not an integer
        {"type": "eq", "key": "year", "value": 1.5},
        {"type": "eq", "key": "ok", "value": 1},
        {"type": "eq", "key": "topic", "value": ["a"]},
        {"type": "nin", "key": "topic", "value": []},
        {"type": "gt", "key": "ok", "value": 1},
        {"type": "and", "filters": "x"},
    ],
)
def test_malformed_filters_are_400_on_param_filters(raw: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_filters(raw, ATTRS)
    assert info.value.param == "filters" and info.value.status_code == 400


def test_depth_is_bounded() -> None:
    raw: dict[str, Any] = {"type": "eq", "key": "topic", "value": "a"}
    for _ in range(MAX_DEPTH):
        raw = {"type": "and", "filters": [raw]}
    with pytest.raises(InvalidRequestError, match="deeper"):
        parse_filters(raw, ATTRS)


def test_attributes_of_a_file() -> None:
    assert check_attributes({"topic": "a", "extra": 1.5}, ATTRS) == {"topic": "a", "extra": 1.5}
    assert check_attributes(None, ATTRS) == {}
    for bad in ({"year": "2024"}, {f"k{i}": 1 for i in range(17)}, {"x": [1]}):
        with pytest.raises(InvalidRequestError):
            check_attributes(bad, ATTRS)

"""Cache modes and per-request controls decide reads, writes and the TTL."""

from __future__ import annotations

from typing import Any

import pytest

from aiservice.errors import InvalidRequestError
from aiservice.llm.cache.policy import CachePolicy, decide

SAMPLED = {"messages": [], "temperature": 0.7}
GREEDY = {"messages": [], "temperature": 0}
SEEDED = {"messages": [], "seed": 3}


def test_mode_on_caches_everything_and_off_nothing() -> None:
    assert decide("on", SAMPLED, {}) == CachePolicy(read=True, write=True)
    assert not decide("off", GREEDY, {}).active


def test_deterministic_mode_caches_only_temperature_zero_or_seeded() -> None:
    assert decide("deterministic", GREEDY, {}).active
    assert decide("deterministic", SEEDED, {}).active
    assert not decide("deterministic", SAMPLED, {}).active
    assert not decide("deterministic", {"messages": []}, {}).active  # default temperature 1


def test_cache_control_directives_skip_read_or_write() -> None:
    assert decide("on", GREEDY, {"cache-control": "no-cache"}) == CachePolicy(False, True)
    assert decide("on", GREEDY, {"cache-control": "No-Store"}) == CachePolicy(True, False)
    assert not decide("on", GREEDY, {"cache-control": "no-cache, no-store"}).active


def test_ttl_header_sets_the_entry_ttl() -> None:
    assert decide("on", GREEDY, {"x-aiservice-cache-ttl": "90"}).ttl == 90.0


@pytest.mark.parametrize("value", ["0", "-5", "soon", "1.5", str(10**9)])
def test_invalid_ttl_header_is_a_400(value: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        decide("on", GREEDY, {"x-aiservice-cache-ttl": value})
    assert info.value.param == "x-aiservice-cache-ttl"


def test_unquoted_yaml_on_and_off_select_the_modes(tmp_path: Any) -> None:
    from aiservice.config import load_settings

    for text, mode in (("on", "on"), ("off", "off"), ("deterministic", "deterministic")):
        path = tmp_path / "aiservice.yaml"
        path.write_text(f"cache:\n  mode: {text}\n")
        settings = load_settings(path, environ={}, dotenv_file=None, cwd=tmp_path)
        assert settings.cache.mode == mode

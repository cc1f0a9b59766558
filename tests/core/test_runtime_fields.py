"""The runtime carries each capability in a typed field, reset when the app closes; the
capabilities start in the order their declared fields require."""

from __future__ import annotations

import importlib
import subprocess
import sys
import typing
from types import ModuleType

import pytest

from aiservice import Settings, create_app
from aiservice.app import CAPABILITIES, get_runtime, start_hooks
from aiservice.cache.failopen import FailOpenBackend
from aiservice.cache.ratelimit import RateLimiter
from aiservice.llm.cache.responses import ResponseCache
from aiservice.llm.gateway import Gateway
from aiservice.orchestrator.service import Orchestrator
from aiservice.runtime import Runtime
from aiservice.vectors.service import VectorStores

# The names the annotations use; runtime.py imports them for the type checker only.
TYPES = {
    "FailOpenBackend": FailOpenBackend,
    "ResponseCache": ResponseCache,
    "RateLimiter": RateLimiter,
    "Gateway": Gateway,
    "Orchestrator": Orchestrator,
    "VectorStores": VectorStores,
}
FIELDS = {
    "state": FailOpenBackend,
    "response_cache": ResponseCache,
    "limiter": RateLimiter,
    "gateway": Gateway,
    "orchestrator": Orchestrator,
    "vectors": VectorStores,
}


def test_the_string_keyed_dict_is_gone() -> None:
    runtime = Runtime(Settings())
    assert not hasattr(runtime, "components")
    assert "components" not in typing.get_type_hints(Runtime, localns=TYPES)


def test_every_capability_field_is_typed_and_optional() -> None:
    hints = typing.get_type_hints(Runtime, localns=TYPES)
    assert set(hints) == set(FIELDS)
    for name, kind in FIELDS.items():
        assert hints[name] == kind | None, name


def test_a_new_runtime_has_no_capability_built() -> None:
    runtime = Runtime(Settings())
    assert {name: getattr(runtime, name) for name in FIELDS} == dict.fromkeys(FIELDS)


async def test_start_sets_the_fields_and_close_clears_them() -> None:
    app = create_app(Settings(), configure_logs=False)
    runtime = get_runtime(app)
    async with app.router.lifespan_context(app):
        built = {name: getattr(runtime, name) for name in FIELDS}
        assert runtime.orchestrator is None  # no flows configured
        for name in ("state", "response_cache", "limiter", "gateway"):
            assert isinstance(built[name], FIELDS[name]), name
    # Closed: nothing the exit stack closed stays reachable, so a restart rebuilds all.
    assert {name: getattr(runtime, name) for name in FIELDS} == dict.fromkeys(FIELDS)
    async with app.router.lifespan_context(app):
        assert runtime.state is not None and runtime.state is not built["state"]
        assert runtime.gateway is not None and runtime.gateway is not built["gateway"]


async def test_a_failed_start_leaves_no_field_set() -> None:
    async def boom(runtime: Runtime) -> None:
        raise ValueError("boom")

    from aiservice.cache.state import start as start_state

    runtime = Runtime(Settings())
    with pytest.raises(ValueError, match="boom"):
        await runtime.start([start_state, boom])
    assert runtime.state is None and runtime.limiter is None and not runtime.started


def test_importing_the_runtime_loads_no_capability_type() -> None:
    # The package import (``aiservice/__init__``) loads the app factory, not the classes
    # the fields are typed with: those load when their capability starts.
    code = (
        "import sys, aiservice.runtime;"
        "print(sorted(m for m in sys.modules if m.startswith("
        "('aiservice.llm', 'aiservice.orchestrator', 'aiservice.cache.ratelimit', "
        "'aiservice.llm.cache'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _capabilities() -> list[ModuleType]:
    return [importlib.import_module(name) for name in CAPABILITIES]


def test_start_hooks_follow_declared_needs_not_the_tuple_order() -> None:
    from aiservice.api import openai_compat, orchestrate, vector_stores
    from aiservice.cache import state

    hooks = start_hooks(list(reversed(_capabilities())))
    # vector stores index through the orchestrator's queue when it is durable
    assert hooks == [state.start, openai_compat.start, orchestrate.start, vector_stores.start]
    assert start_hooks(_capabilities()) == [
        state.start,
        openai_compat.start,
        orchestrate.start,
        vector_stores.start,
    ]


def test_declared_names_are_runtime_fields_each_set_by_one_capability() -> None:
    provided: list[str] = []
    for module in _capabilities():
        if hasattr(module, "start"):
            provided += module.PROVIDES
            assert set(module.START_AFTER) <= set(FIELDS), module.__name__
    assert sorted(provided) == sorted(FIELDS)


def test_a_start_cycle_is_named() -> None:
    async def start(runtime: Runtime) -> None:
        return None

    first, second = ModuleType("first"), ModuleType("second")
    for module, provides, after in ((first, "gateway", "state"), (second, "state", "gateway")):
        module.start, module.PROVIDES, module.START_AFTER = start, (provides,), (after,)  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="first -> second -> first"):
        start_hooks([first, second])


async def test_reversed_capabilities_still_charge_usage_to_the_limiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("aiservice.app.CAPABILITIES", tuple(reversed(CAPABILITIES)))
    app = create_app(Settings(), configure_logs=False)
    runtime = get_runtime(app)
    async with app.router.lifespan_context(app):
        assert runtime.limiter is not None and runtime.gateway is not None
        assert runtime.limiter.record in runtime.gateway.accountant.listeners


def test_capabilities_imported_late_have_no_start_hook() -> None:
    """``ROUTES_ONLY`` modules are imported when the app includes their routers, after
    startup: a start hook there would never run."""
    from aiservice.app import ROUTES_ONLY

    assert ROUTES_ONLY <= set(CAPABILITIES)
    for name in ROUTES_ONLY:
        module = importlib.import_module(name)
        assert not hasattr(module, "start"), name
        assert module.router is not None, name

"""What a cold start no longer pays: pydantic.v1, inspect's text-signature parsing, the
collector walking the startup heap. Each shortcut keeps the behaviour it replaces."""

from __future__ import annotations

import gc
import inspect
import json
import subprocess
import sys
import textwrap
import warnings

import pytest
from fastapi import FastAPI

from aiservice.api import pydantic_v1_probe
from aiservice.app import collector_paused
from aiservice.config import Settings
from aiservice.config.factories import factory, new_dict, new_list

_FIRST_REQUESTS = textwrap.dedent(
    """
    import asyncio, json, sys
    import httpx
    from aiservice import create_app

    async def main():
        app = create_app(configure_logs=False)
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                live = await client.get("/health/live")
                chat = await client.post(
                    "/v1/chat/completions",
                    json={"model": "fake", "messages": [{"role": "user", "content": "hi"}]},
                )
        print(json.dumps({
            "live": [live.status_code, live.json(), live.headers["content-type"]],
            "chat": chat.status_code,
            "v1": "pydantic.v1" in sys.modules,
        }))

    asyncio.run(main())
    """
)


def test_first_requests_do_not_import_pydantic_v1() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_REQUESTS],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {
        "live": [200, {"status": "ok"}, "application/json"],
        "chat": 200,
        "v1": False,
    }


def test_a_pydantic_v1_model_is_still_refused() -> None:
    pydantic_v1_probe.install()
    pydantic_v1_probe.install()  # idempotent: one guard, not two
    from fastapi._compat import shared

    check = shared.is_pydantic_v1_model_class
    assert not hasattr(check.__wrapped__, "__wrapped__")  # type: ignore[attr-defined]
    with warnings.catch_warnings():  # pydantic warns about v1 on newer Pythons
        warnings.simplefilter("ignore")
        from pydantic import v1

    class Old(v1.BaseModel):
        name: str

    app = FastAPI()
    with pytest.raises(Exception, match="pydantic.v1 models are no longer supported"):

        @app.get("/old", response_model=Old)
        async def old() -> dict[str, str]:
            return {"name": "x"}


def test_settings_factories_carry_their_signature() -> None:
    made = [factory(list), new_list, new_dict]
    for make in made:
        assert inspect.signature(make) == inspect.Signature()
    assert new_list() == [] and new_list() is not new_list()
    assert new_dict() == {} and new_dict() is not new_dict()
    # Every default factory of the settings models: no parameter to parse, fresh values.
    pending: list[type] = [Settings]
    seen: set[type] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for field in model.model_fields.values():  # type: ignore[attr-defined]
            if field.default_factory is not None:
                assert getattr(field.default_factory, "__signature__", None) is not None, field
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                pending.append(annotation)
    defaults = Settings.model_construct()
    assert defaults.auth.api_keys == [] and defaults.auth.api_keys is not (
        Settings.model_construct().auth.api_keys
    )
    assert defaults.cors.allowed_methods == ["GET", "POST", "OPTIONS"]


def test_the_collector_is_paused_and_restored() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # off before: left off
    finally:
        gc.enable()

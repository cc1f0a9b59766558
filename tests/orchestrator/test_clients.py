"""Step and webhook clients: every one is guarded; the literal tier opens only its origins."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from aiservice.orchestrator.clients import ClientPool
from aiservice.orchestrator.origin import Origin
from aiservice.security.ssrf import GuardedTransport, SSRFError, SSRFGuard

from ..support.servers import serve_app


@pytest.fixture(scope="module")
def two_servers() -> Iterator[tuple[int, int]]:
    app = FastAPI()

    @app.get("/")
    async def root() -> Any:
        return {"ok": True}

    with serve_app(app) as one, serve_app(app) as two:
        ports = httpx.URL(one).port, httpx.URL(two).port
        assert ports[0] is not None and ports[1] is not None
        yield ports[0], ports[1]


async def test_every_client_is_guarded_and_follows_nothing() -> None:
    pool = ClientPool(SSRFGuard(), SSRFGuard())
    for literal in (True, False):
        client = pool.get("flow/step", literal=literal)
        assert isinstance(client._transport, GuardedTransport)
        assert client.follow_redirects is False
        assert client.trust_env is False
    await pool.aclose()


async def test_literal_tier_reaches_only_the_configured_origins(
    two_servers: tuple[int, int],
) -> None:
    configured, other = two_servers
    built = SSRFGuard()
    pool = ClientPool(built, built.extended([Origin("http", "127.0.0.1", configured).rule()]))
    try:
        literal = pool.get("f/s", literal=True)
        response = await literal.get(f"http://127.0.0.1:{configured}/")
        assert response.json() == {"ok": True}
        with pytest.raises(SSRFError):  # same host, another port: not configured
            await literal.get(f"http://127.0.0.1:{other}/")
        with pytest.raises(SSRFError):  # built URLs never get the configured origins
            await pool.get("f/s", literal=False).get(f"http://127.0.0.1:{configured}/")
    finally:
        await pool.aclose()

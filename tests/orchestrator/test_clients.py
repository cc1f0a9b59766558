"""Step and webhook clients: every one is guarded; the literal tier opens only its origins."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from yarl import URL

from aiservice.orchestrator.clients import ClientPool
from aiservice.orchestrator.origin import Origin
from aiservice.security.ssrf import SSRFError, SSRFGuard
from aiservice.transport.client import build_request
from aiservice.transport.guard import GuardedConnector

from ..support.servers import serve_app


@pytest.fixture(scope="module")
def two_servers() -> Iterator[tuple[int, int]]:
    app = FastAPI()

    @app.get("/")
    async def root() -> Any:
        return {"ok": True}

    with serve_app(app) as one, serve_app(app) as two:
        ports = URL(one).port, URL(two).port
        assert ports[0] is not None and ports[1] is not None
        yield ports[0], ports[1]


async def test_every_client_is_guarded_and_trusts_no_environment() -> None:
    built, literal = SSRFGuard(), SSRFGuard(["127.0.0.1"])
    pool = ClientPool(built, literal)
    try:
        for is_literal, guard in ((False, built), (True, literal)):
            client = pool.get(literal=is_literal)
            assert client.guard is guard
            session = client.pool.session()
            assert isinstance(session.connector, GuardedConnector)
            assert session.connector.guard is guard
            assert session.trust_env is False  # no HTTP(S)_PROXY, no .netrc
    finally:
        await pool.aclose()


async def test_literal_tier_reaches_only_the_configured_origins(
    two_servers: tuple[int, int],
) -> None:
    configured, other = two_servers
    built = SSRFGuard()
    pool = ClientPool(built, built.extended([Origin("http", "127.0.0.1", configured).rule()]))
    try:
        literal = pool.get(literal=True)
        answer = await literal.send(build_request("GET", f"http://127.0.0.1:{configured}/"))
        assert answer.json() == {"ok": True}
        with pytest.raises(SSRFError):  # same host, another port: not configured
            await literal.send(build_request("GET", f"http://127.0.0.1:{other}/"))
        with pytest.raises(SSRFError):  # built URLs never get the configured origins
            built_client = pool.get(literal=False)
            await built_client.send(build_request("GET", f"http://127.0.0.1:{configured}/"))
    finally:
        await pool.aclose()

"""Session settings every upstream call shares: pool limits, keep-alive, no environment."""

from __future__ import annotations

import aiohttp
import pytest

from aiservice.security.ssrf import SSRFGuard
from aiservice.transport.guard import GuardedConnector
from aiservice.transport.session import (
    KEEPALIVE_SECONDS,
    MAX_CONNECTIONS,
    SessionPool,
    ssl_context,
)


@pytest.mark.parametrize("guarded", [False, True])
async def test_sessions_are_tuned_and_trust_nothing_from_the_environment(guarded: bool) -> None:
    pool = SessionPool(lambda: GuardedConnector(SSRFGuard())) if guarded else SessionPool()
    session = pool.session()
    try:
        connector = session.connector
        assert isinstance(connector, aiohttp.TCPConnector)
        assert connector.limit == MAX_CONNECTIONS and connector.limit_per_host == 0
        assert connector._keepalive_timeout == KEEPALIVE_SECONDS
        # The guard resolves every new connection itself: no DNS cache to go stale.
        assert connector.use_dns_cache is not guarded
        assert session.trust_env is False  # no HTTP(S)_PROXY, no .netrc
        assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
        assert pool.session() is session  # one per loop
    finally:
        await pool.close()
    assert session.closed and not pool.sessions()


def test_one_ssl_context_for_the_process() -> None:
    assert ssl_context() is ssl_context()

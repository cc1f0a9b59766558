"""The SSRF guard: what it refuses, what the allowlist opens, and that it pins the address."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from aiservice.security.ssrf import GuardedTransport, SSRFError, SSRFGuard

from ..support.servers import serve_app


@pytest.fixture(scope="module")
def echo_server() -> Iterator[str]:
    app = FastAPI()

    @app.get("/echo")
    async def echo(request: Request) -> Any:
        return {"host": request.headers["host"]}

    with serve_app(app) as url:
        yield url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.1.2.3/",
        "http://localhost/",
        "http://[::1]/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.170.2/v2/credentials",
        "http://[fd00:ec2::254]/",
        "http://[fc00::1]/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://100.100.100.200/",
        "http://0.0.0.0/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/",
        "ftp://example.com/",
        "/relative/path",
    ],
)
async def test_non_public_destinations_are_refused(url: str) -> None:
    with pytest.raises(SSRFError):
        await SSRFGuard().check_url(url)


async def test_public_address_literal_is_allowed() -> None:
    await SSRFGuard().check_url("https://8.8.8.8/dns")


async def test_allowlist_accepts_hosts_and_cidrs_only_for_what_they_name() -> None:
    guard = SSRFGuard(["127.0.0.0/8", "localhost"])
    await guard.check_url("http://127.0.0.1:8080/hook")
    await guard.check_url("http://localhost/")  # the name is allowed, whatever it resolves to
    with pytest.raises(SSRFError):
        await guard.check_url("http://10.0.0.1/")
    with pytest.raises(SSRFError):
        await guard.check_url("http://169.254.169.254/")


async def test_refused_errors_are_400_with_clear_code() -> None:
    with pytest.raises(SSRFError) as info:
        await SSRFGuard().check_url("http://169.254.169.254/")
    assert info.value.status_code == 400
    assert info.value.code == "url_not_allowed"
    assert "169.254.169.254" in info.value.message


async def test_guarded_transport_refuses_at_connect_time(echo_server: str) -> None:
    async with httpx.AsyncClient(transport=GuardedTransport(SSRFGuard())) as client:
        with pytest.raises(SSRFError):
            await client.get(f"{echo_server}/echo")


async def test_guarded_transport_connects_to_checked_address_keeping_host(
    echo_server: str,
) -> None:
    port = httpx.URL(echo_server).port
    resolved: list[str] = []

    class Recording(SSRFGuard):
        async def resolve(self, host: str, port: int) -> list[str]:
            addresses = await super().resolve(host, port)
            resolved.extend(addresses)
            return addresses

    guard = Recording(["localhost", "127.0.0.1"])
    async with httpx.AsyncClient(transport=GuardedTransport(guard)) as client:
        response = await client.get(f"http://localhost:{port}/echo")
    assert response.status_code == 200
    # The server saw the original name; the socket went to an address the guard checked.
    assert response.json() == {"host": f"localhost:{port}"}
    assert "127.0.0.1" in resolved

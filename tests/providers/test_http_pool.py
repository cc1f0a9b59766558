"""The providers' sharded upstream connection pools, against a real local server."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx

from aiservice.providers.http import ShardedTransport
from tests.support.servers import serve_app


class HeldServer:
    """Answers with the client's port; holds every request until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.arrived = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.arrived += 1
        await asyncio.to_thread(self.release.wait, 10)
        body = str(scope["client"][1]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def wait_arrived(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while self.arrived < count:
            assert time.monotonic() < deadline, f"only {self.arrived} of {count} arrived"
            await asyncio.sleep(0.01)


async def test_light_traffic_stays_on_one_warm_connection() -> None:
    server = HeldServer()
    server.release.set()
    with serve_app(server, lifespan="off") as url:
        async with httpx.AsyncClient(base_url=url, transport=ShardedTransport()) as client:
            ports = {(await client.get("/")).text for _ in range(5)}
    assert len(ports) == 1


async def test_concurrent_requests_fill_shards_in_order_and_free_their_slots() -> None:
    server = HeldServer()
    transport = ShardedTransport(shards=3, target=2)
    with serve_app(server, lifespan="off") as url:
        async with httpx.AsyncClient(base_url=url, transport=transport) as client:
            calls = [asyncio.create_task(client.get("/")) for _ in range(5)]
            await server.wait_arrived(5)
            assert transport.in_flight == (2, 2, 1)
            server.release.set()
            responses = await asyncio.gather(*calls)
            assert transport.in_flight == (0, 0, 0)
    assert all(r.status_code == 200 for r in responses)
    assert len({r.text for r in responses}) == 5  # five connections were in use at once


async def test_a_streamed_response_holds_its_slot_until_closed() -> None:
    server = HeldServer()
    server.release.set()
    transport = ShardedTransport(shards=2, target=1)
    with serve_app(server, lifespan="off") as url:
        async with httpx.AsyncClient(base_url=url, transport=transport) as client:
            async with client.stream("GET", "/") as response:
                assert transport.in_flight == (1, 0)
                await response.aread()
            assert transport.in_flight == (0, 0)

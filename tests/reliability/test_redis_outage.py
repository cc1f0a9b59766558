"""A Redis outage under steady traffic: every request answered, fast, and the cache comes back.

The real ``aiservice serve`` process (uvicorn) keeps its response cache and rate limits on a
private redis-server. Several clients send a steady stream of chat (plain and streamed,
``temperature: 0`` so they are cacheable) and embeddings requests while Redis is

1. frozen (SIGSTOP): connections hang instead of failing, the case the fail-open timeout
   (``cache.timeout_ms``) and cool-down exist for;
2. killed (SIGKILL), then restarted empty on the same port.

Every request must be answered 200 with its own answer, none may wait on the dead backend,
and after the restart the cache serves hits, rate limits count again and readiness reports
the cache ok.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cache.redis_server import RedisProcess, redis_process

from .service_process import Service, report_numbers, serve_process

pytestmark = pytest.mark.slow

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
CLIENTS = 6
PAUSE = 0.01  # between one client's requests: steady, not a flood
# No request may wait on the broken backend: the wrapper bounds a call by timeout_ms (50 ms)
# and then skips the backend for a second. A hung Redis without that bound costs the
# client's socket timeout (0.5 s) per backend call, several per request: every request
# of the outage would take 0.5 s or more. So most of them must be far faster than that,
# and none may take as long as a few socket timeouts. (The single slowest request alone
# says little on a loaded 2-core machine: one paused for 1.3 s of CPU starvation.)
OUTAGE_P90_BOUND = 0.25
LATENCY_BOUND = 2.0
REPEATED = "the same question again"
FREEZE = 3.0  # seconds Redis stays frozen
COOLDOWN = 1.0  # the fail-open wrapper's cool-down after a failure


@dataclass(frozen=True, slots=True)
class Outcome:
    phase: str  # when it was sent and answered; 'a->b' if the phase changed meanwhile
    kind: str
    status: int
    seconds: float
    correct: bool
    cache: str | None
    limited: bool  # the answer carried x-ratelimit-* headers: the limiter reached Redis


class Traffic:
    """Concurrent clients sending a mix of requests until stopped, recording each outcome."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.phase = "before"
        self.outcomes: list[Outcome] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(*(self._loop(n) for n in range(CLIENTS)))

    async def warm_up(self) -> None:
        """One request of each kind, one at a time, before the steady traffic.

        A process's first requests do one-off work (imports, schema builds) that keeps its
        event loop busy for a while; under a concurrent burst that can stretch a healthy
        backend call past ``cache.timeout_ms``. Not what this test is about.
        """
        for sender in (self._chat_repeated, self._chat_unique, self._stream_unique, self._embed):
            kind, response, correct = await sender("warm-up")
            assert response.status_code == 200 and correct, (kind, response.text)

    def stop(self) -> None:
        self._stop.set()

    def in_phase(self, *phases: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.phase in phases]

    async def _loop(self, client_no: int) -> None:
        senders = (self._chat_repeated, self._chat_unique, self._stream_unique, self._embed)
        i = 0
        while not self._stop.is_set():
            phase = self.phase
            sender = senders[(i + client_no) % len(senders)]
            started = time.perf_counter()
            kind, response, correct = await sender(f"client {client_no} request {i}")
            if self.phase != phase:  # in flight across a change: belongs to neither phase
                phase = f"{phase}->{self.phase}"
            self.outcomes.append(
                Outcome(
                    phase,
                    kind,
                    response.status_code,
                    time.perf_counter() - started,
                    correct,
                    response.headers.get("x-aiservice-cache"),
                    "x-ratelimit-remaining-requests" in response.headers,
                )
            )
            i += 1
            await asyncio.sleep(PAUSE)

    async def _chat_repeated(self, _: str) -> tuple[str, httpx.Response, bool]:
        response = await self.client.post(CHAT, json=chat_body(REPEATED))
        return "chat-repeated", response, reply(response) == REPEATED

    async def _chat_unique(self, text: str) -> tuple[str, httpx.Response, bool]:
        response = await self.client.post(CHAT, json=chat_body(text))
        return "chat", response, reply(response) == text

    async def _stream_unique(self, text: str) -> tuple[str, httpx.Response, bool]:
        response = await self.client.post(CHAT, json={**chat_body(text), "stream": True})
        return "stream", response, streamed_reply(response) == text

    async def _embed(self, text: str) -> tuple[str, httpx.Response, bool]:
        response = await self.client.post(
            EMBEDDINGS, json={"model": "fake", "input": [text, "x"], "dimensions": 8}
        )
        ok = response.status_code == 200 and len(response.json()["data"]) == 2
        return "embeddings", response, ok


def chat_body(text: str) -> dict[str, object]:
    return {"model": "fake", "temperature": 0, "messages": [{"role": "user", "content": text}]}


def reply(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return None
    content = response.json()["choices"][0]["message"]["content"]
    return str(content)


def streamed_reply(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return None
    parts = []
    for line in response.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            chunk = json.loads(line[len("data: ") :])
            parts += [c["delta"].get("content") or "" for c in chunk["choices"]]
    return "".join(parts)


async def backend_errors(client: httpx.AsyncClient) -> dict[str, float]:
    """The service's ``aiservice_state_backend_errors_total``, summed by reason."""
    metrics = (await client.get("/metrics")).text
    totals: dict[str, float] = {}
    pattern = re.compile(r"^aiservice_state_backend_errors_total\{([^}]*)\} (\S+)$", re.M)
    for labels, value in pattern.findall(metrics):
        reason = re.search(r'reason="([^"]*)"', labels)
        if reason:
            totals[reason.group(1)] = totals.get(reason.group(1), 0.0) + float(value)
    return totals


@pytest.fixture
def redis_and_service(tmp_path: Path) -> Iterator[tuple[RedisProcess, Service]]:
    with redis_process() as redis:
        config = {
            "cache": {"backend": "redis", "url": redis.url, "timeout_ms": 50},
            "limits": {"requests_per_minute": 1_000_000, "on_backend_error": "allow"},
            "logging": {"level": "INFO", "access_log": True},
        }
        with serve_process(tmp_path, config) as service:
            yield redis, service


async def wait_for_recovery(
    client: httpx.AsyncClient, deadline: float
) -> tuple[str | None, bool, str | None]:
    """Poll until a repeated request is a hit counted by the rate limiter and readiness
    reports the cache ok; returns what the last poll saw."""
    cache: str | None = None
    limited, ready = False, None
    while time.monotonic() < deadline:
        response = await client.post(CHAT, json=chat_body(REPEATED))
        cache = response.headers.get("x-aiservice-cache")
        limited = "x-ratelimit-remaining-requests" in response.headers
        ready = (await client.get("/health/ready")).json()["checks"]["cache"]["status"]
        if (cache, limited, ready) == ("hit", True, "ok"):
            break
        await asyncio.sleep(0.2)
    return cache, limited, ready


async def test_redis_frozen_then_killed_and_restarted_under_traffic(
    redis_and_service: tuple[RedisProcess, Service], request: pytest.FixtureRequest
) -> None:
    redis, service = redis_and_service
    assert redis.proc is not None
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        traffic = Traffic(client)
        await traffic.warm_up()
        running = asyncio.create_task(traffic.run())
        await asyncio.sleep(1.5)

        before_freeze = await backend_errors(client)
        traffic.phase = "frozen"
        redis.proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(FREEZE)
        traffic.phase = "thawed"
        redis.proc.send_signal(signal.SIGCONT)
        after_freeze = await backend_errors(client)
        await asyncio.sleep(1.5)

        traffic.phase = "dead"
        redis.stop()  # SIGKILL
        await asyncio.sleep(1.0)
        ready_while_dead = await client.get("/health/ready")
        await asyncio.sleep(1.0)

        traffic.phase = "restarted"
        redis.start()  # same port, empty
        recovered = await wait_for_recovery(client, time.monotonic() + 15)
        await asyncio.sleep(1.0)
        traffic.stop()
        await running

    outcomes = traffic.outcomes
    failed = [o for o in outcomes if o.status != 200]
    report_numbers(
        request,
        requests=len(outcomes),
        failed=len(failed) + sum(1 for o in outcomes if not o.correct),
        during_outage=sum(1 for o in outcomes if "frozen" in o.phase or "dead" in o.phase),
        slowest_ms=round(max(o.seconds for o in outcomes) * 1000, 1),
    )
    assert not failed, f"{len(failed)} of {len(outcomes)} requests failed: {failed[:5]}"
    wrong = [o for o in outcomes if not o.correct]
    assert not wrong, f"answers not matching their request: {wrong[:5]}"
    for phase in ("before", "frozen", "thawed", "dead", "restarted"):
        assert len(traffic.in_phase(phase)) >= 8, f"too little traffic while {phase}"

    for phase in ("frozen", "dead"):
        times = sorted(o.seconds for o in traffic.in_phase(phase))
        p90 = times[int(len(times) * 0.9)]
        assert p90 < OUTAGE_P90_BOUND, f"requests waited on the {phase} Redis: p90 {p90:.3f} s"
    slowest = max(outcomes, key=lambda o: o.seconds)
    assert slowest.seconds < LATENCY_BOUND, f"a request waited on the outage: {slowest}"

    # The freeze was found by the timeout, then the backend was skipped: the calls in flight
    # when Redis froze timed out, then one probe per cool-down, not every request. A client
    # has up to two calls in flight: its request's, and the store of its previous answer
    # (a flight stores its entry after answering its readers).
    timeouts = after_freeze.get("timeout", 0) - before_freeze.get("timeout", 0)
    skipped = after_freeze.get("cooldown", 0) - before_freeze.get("cooldown", 0)
    assert 1 <= timeouts <= 2 * CLIENTS + FREEZE / COOLDOWN + 1, (before_freeze, after_freeze)
    assert skipped > timeouts

    # Redis served the cache and the limits before the outage...
    before = traffic.in_phase("before")
    assert any(o.cache == "hit" for o in before) and any(o.limited for o in before)
    assert ready_while_dead.status_code == 200
    assert ready_while_dead.json()["checks"]["cache"]["status"] == "fail"
    # ... and again after the restart: hits, the limiter counting (its Lua scripts
    # reloaded into the empty server), readiness ok.
    assert recovered == ("hit", True, "ok")
    restarted = traffic.in_phase("restarted")
    assert any(o.cache == "hit" for o in restarted) and any(o.limited for o in restarted)

    # An outage is reported, not shouted: one warning per component per minute.
    log = service.output()
    assert log.count("shared state backend redis unavailable") == 1
    assert log.count("rate-limit backend unavailable") == 1

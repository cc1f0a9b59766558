"""What the Responses API translation costs over chat (loopback only, ~30 s):
``python bench/responses_overhead.py``.

One aiservice (uvicorn, 1 worker, the offline ``fake`` model, response cache off, one
API key) answers, on one keep-alive connection, the same question alternately as
``POST /v1/chat/completions`` and as ``POST /v1/responses`` (``store: false``, and again
with ``store: true`` on the in-memory state backend), ``ROUNDS`` rounds after a warm-up.
Printed: the median latency of each and the ratio to chat measured in the same run.

Target: a translated response <= 1.3 x the chat completion it becomes (median, fake
model, so the ratio shows the translation and storage, not an upstream).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time

from _common import GATEWAY, Connection, servers

ROUNDS = 1500
WARMUP = 200
API_KEY = "bench-client-key-responses"
AUTH = f"Authorization: Bearer {API_KEY}\r\n"
QUESTION = "What is the weather like in Paris today, and should I take an umbrella?"
CONFIG = {"auth": {"api_keys": [API_KEY]}, "cache": {"mode": "off"}}
REQUESTS = {
    "chat": (
        "/v1/chat/completions",
        {"model": "fake", "messages": [{"role": "user", "content": QUESTION}]},
    ),
    "responses": ("/v1/responses", {"model": "fake", "input": QUESTION, "store": False}),
    "responses+store": ("/v1/responses", {"model": "fake", "input": QUESTION}),
}


async def measure(port: int) -> dict[str, list[float]]:
    conn = await Connection.open(port)
    times: dict[str, list[float]] = {name: [] for name in REQUESTS}
    try:
        for i in range(WARMUP + ROUNDS):
            for name, (path, body) in REQUESTS.items():
                data = json.dumps(body).encode()
                start = time.perf_counter()
                status, _, _ = await conn.send("POST", path, data, AUTH)
                elapsed = time.perf_counter() - start
                assert status == 200, (name, status)
                if i >= WARMUP:
                    times[name].append(elapsed)
    finally:
        conn.close()
    return times


def main() -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as cfg:
        cfg.write(json.dumps(CONFIG))
    with servers({"gateway": (GATEWAY, [cfg.name])}) as ports:
        times = asyncio.run(measure(ports["gateway"]))
    chat = statistics.median(times["chat"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:16s} median {median * 1000:.3f} ms  ratio to chat {median / chat:.2f}")


if __name__ == "__main__":
    main()

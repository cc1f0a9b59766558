"""A fake fleet of ML functions served over real HTTP, recording what they receive.

``POST /fn/{name}`` answers ``{"name", "body", "n"}`` after ``delay_ms`` (query), with
failure modes driven by query parameters:

* ``status=500`` — always answer that status;
* ``fail_times=2&retry_after_ms=40`` — fail the first N calls with 503 (+ Retry-After);
* ``slow=1`` — sleep in small slices watching for the client to disconnect, and record it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class Call:
    name: str
    body: Any
    headers: dict[str, str]
    start: float
    end: float | None = None


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.disconnected.clear()
            self.counts.clear()

    def by_name(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]


def ml_app(recorder: Recorder) -> FastAPI:
    app = FastAPI()

    @app.api_route("/fn/{name}", methods=["GET", "POST"])
    async def function(name: str, request: Request) -> Any:
        raw = await request.body()
        body = await request.json() if raw else None
        params = request.query_params
        call = Call(name, body, dict(request.headers), time.monotonic())
        with recorder.lock:
            recorder.calls.append(call)
            recorder.counts[name] += 1
            n = recorder.counts[name]
        delay = float(params.get("delay_ms", "0")) / 1000
        if params.get("slow"):
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    with recorder.lock:
                        recorder.disconnected.append(name)
                    return JSONResponse({}, status_code=499)
                await asyncio.sleep(0.01)
        elif delay:
            await asyncio.sleep(delay)
        call.end = time.monotonic()
        if n <= int(params.get("fail_times", "0")):
            headers = {}
            if "retry_after_ms" in params:
                headers["retry-after-ms"] = params["retry_after_ms"]
            return JSONResponse({"error": "busy"}, status_code=503, headers=headers)
        status = int(params.get("status", "200"))
        return JSONResponse({"name": name, "body": body, "n": n}, status_code=status)

    return app


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    valid: bool


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """An independent Standard Webhooks verifier (whsec_ key, v1 HMAC-SHA256, 5 min skew)."""
    import base64
    import hashlib
    import hmac

    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(stamp)) > 300:
        return False
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split())


def webhook_app(secret: str, deliveries: list[Delivery]) -> FastAPI:
    """Receives webhooks, verifying signatures; ``fail_times`` / redirect modes."""
    app = FastAPI()
    attempts: dict[str, int] = defaultdict(int)

    @app.post("/hook")
    async def hook(request: Request) -> Any:
        body = await request.body()
        headers = dict(request.headers)
        deliveries.append(Delivery(headers, body, verify_standard_webhook(secret, headers, body)))
        attempts["hook"] += 1
        if attempts["hook"] <= int(request.query_params.get("fail_times", "0")):
            return JSONResponse({}, status_code=503, headers={"retry-after-ms": "20"})
        return JSONResponse({"ok": True})

    @app.post("/moved")
    async def moved() -> Any:
        return JSONResponse({}, status_code=307, headers={"location": "/hook"})

    return app

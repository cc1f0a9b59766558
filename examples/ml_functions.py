"""A stand-in for the ML functions of seed 001, to try the orchestrator end to end locally.

Run it next to ``aiservice serve`` (see examples/README.md)::

    python examples/ml_functions.py          # listens on 127.0.0.1:9001

Endpoints mimic the Cloud Functions / Cloud Run services the original team called:
``/create-user-embeddings``, ``/match-candidato``, ``/match-analysis-user-vacancy``, plus
``/webhook``, which verifies the Standard Webhooks signature and prints the result.
Each answers after a short, realistic delay; ``?fail=1`` makes one answer 503.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import random
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI(title="example ML functions")

DEMO_WEBHOOK_SECRET = "whsec_ZGVtby13ZWJob29rLXNlY3JldA=="


def _embedding(user_id: str, size: int = 8) -> list[float]:
    rng = random.Random(user_id)
    return [round(rng.uniform(-1, 1), 4) for _ in range(size)]


async def _work(request: Request, seconds: float) -> dict[str, Any] | JSONResponse:
    if request.query_params.get("fail"):
        return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
    await asyncio.sleep(seconds)
    body: dict[str, Any] = await request.json()
    return body


@app.post("/create-user-embeddings")
async def create_user_embeddings(request: Request) -> Any:
    body = await _work(request, 0.2)
    if isinstance(body, JSONResponse):
        return body
    return {"user_id": body["user_id"], "embedding": _embedding(body["user_id"])}


@app.post("/match-candidato")
async def match_candidato(request: Request) -> Any:
    body = await _work(request, 0.3)
    if isinstance(body, JSONResponse):
        return body
    score = sum(body.get("embedding") or _embedding(body["user_id"])) % 1
    return {"user_id": body["user_id"], "professions": [{"code": "2124", "score": round(score, 3)}]}


@app.post("/match-analysis-user-vacancy")
async def match_analysis_user_vacancy(request: Request) -> Any:
    body = await _work(request, 0.4)
    if isinstance(body, JSONResponse):
        return body
    return {"user_id": body["user_id"], "vacancies": [{"id": "v-1", "fit": "high"}]}


@app.post("/webhook")
async def webhook(request: Request) -> Any:
    body = await request.body()
    secret = os.environ.get("WEBHOOK_SECRET", DEMO_WEBHOOK_SECRET)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode()
    mac = base64.b64encode(hmac.new(key, signed + body, hashlib.sha256).digest()).decode()
    valid = f"v1,{mac}" in request.headers.get("webhook-signature", "").split()
    print(f"webhook {request.headers['webhook-id']}: signature {'valid' if valid else 'INVALID'}")
    return JSONResponse({"valid": valid}, status_code=200 if valid else 400)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "9001")))

"""Every HTTP provider, through the gateway and the API, against a real loopback upstream
that answers 200 with something unusable: a lone surrogate in the text, a body that is
not JSON, truncated JSON, bytes that are not UTF-8. The client always gets a 502 envelope
(never a 500), and with a healthy fallback configured, the fallback's answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import serve_app

TEXT = "PLACEHOLDER"
ANSWERS: dict[str, dict[str, Any]] = {
    "openai": {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    },
    "ollama": {
        "model": "m",
        "message": {"role": "assistant", "content": TEXT},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 1,
        "eval_count": 1,
    },
    "anthropic": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": TEXT}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    },
    "gemini": {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": TEXT}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1},
    },
}
BASE_PATH = {"openai": "/v1", "ollama": "", "anthropic": "", "gemini": ""}


def body(kind: str, fault: str) -> bytes:
    good = json.dumps(ANSWERS[kind]).encode()
    return {
        "ok": good.replace(TEXT.encode(), b"fine answer"),
        "surrogate": good.replace(TEXT.encode(), b"bad \\ud800 text"),
        "bad_utf8": good.replace(TEXT.encode(), b"\xff\xfe bytes"),
        "truncated": good[: len(good) // 2],
        "not_json": b"<html>502 from a proxy, but sent as 200</html>",
    }[fault]


class Canned:
    """Answers every request with the body chosen by ``kind`` and ``fault``."""

    def __init__(self) -> None:
        self.kind, self.fault = "openai", "ok"

    async def answer(self, request: Request) -> Response:
        await request.body()
        return Response(body(self.kind, self.fault), media_type="application/json")

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.answer, methods=["GET", "POST"])])


@pytest.fixture(scope="module")
def canned() -> Iterator[tuple[Canned, str, Canned, str]]:
    bad, good = Canned(), Canned()
    with serve_app(bad.app) as bad_url, serve_app(good.app) as good_url:
        yield bad, bad_url, good, good_url


def provider(kind: str, url: str) -> dict[str, Any]:
    config = {"type": kind, "base_url": url + BASE_PATH[kind], "max_retries": 0, "timeout": 5}
    if kind in ("anthropic", "gemini"):
        config["api_key"] = "sk-test-canned"
    return config


@pytest.mark.parametrize("kind", sorted(ANSWERS))
@pytest.mark.parametrize("fault", ["surrogate", "bad_utf8", "truncated", "not_json"])
async def test_an_unusable_200_is_a_502_and_falls_back(
    make_settings: Any, client_for: Any, canned: Any, kind: str, fault: str
) -> None:
    bad, bad_url, good, good_url = canned
    bad.kind, bad.fault = kind, fault
    good.kind, good.fault = kind, "ok"
    settings = make_settings(
        {
            "providers": {"bad": provider(kind, bad_url), "good": provider(kind, good_url)},
            "models": {
                "solo": [{"provider": "bad", "model": "m"}],
                "pair": [{"provider": "bad", "model": "m"}, {"provider": "good", "model": "m"}],
            },
            "cache": {"mode": "off"},
            "logging": {"level": "CRITICAL"},
        }
    )
    messages = [{"role": "user", "content": "hello"}]
    async with client_for(settings) as http:
        solo = await http.post("/v1/chat/completions", json={"model": "solo", "messages": messages})
        pair = await http.post("/v1/chat/completions", json={"model": "pair", "messages": messages})
    assert solo.status_code == 502, solo.text
    assert solo.json()["error"]["type"] == "upstream_error"
    assert pair.status_code == 200, pair.text
    assert pair.json()["choices"][0]["message"]["content"] == "fine answer"

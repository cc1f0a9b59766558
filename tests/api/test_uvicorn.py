"""The official (sync) openai SDK against the app served by a real uvicorn on loopback."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from aiservice import create_app
from tests.providers.contract import Failure
from tests.support.llm_servers import CLIENT_KEY, ENVIRON, Upstreams, llm_config
from tests.support.servers import serve_app

USER = [{"role": "user", "content": "over the wire"}]


@pytest.fixture
def served(make_settings: Any, upstreams: Upstreams) -> Any:
    app = create_app(make_settings(llm_config(upstreams), ENVIRON), configure_logs=False)
    with serve_app(app) as url:
        with openai.OpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0) as sdk:
            yield sdk


def test_chat_stream_embeddings_and_models_over_http(served: openai.OpenAI) -> None:
    completion = served.chat.completions.create(model="chat", messages=USER)
    assert completion.choices[0].message.content == "echo: over the wire"
    with served.chat.completions.create(
        model="fake", messages=USER, stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "over the wire"
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    vectors = served.embeddings.create(model="fake", input=["a", "b"], dimensions=8)
    assert [len(d.embedding) for d in vectors.data] == [8, 8]
    assert "chat" in [m.id for m in served.models.list().data]


def test_errors_over_http(served: openai.OpenAI, upstreams: Upstreams) -> None:
    with pytest.raises(openai.NotFoundError):
        served.chat.completions.create(model="missing", messages=USER)
    with pytest.raises(openai.UnprocessableEntityError):
        served.chat.completions.create(model="fake", messages=USER, top_p=3)
    upstreams.primary.inject(Failure(status=500))
    with pytest.raises(openai.InternalServerError) as info:
        served.chat.completions.create(model="solo", messages=USER)
    assert info.value.status_code == 502


def test_mid_stream_drop_over_http_raises_in_the_sdk(
    served: openai.OpenAI, upstreams: Upstreams
) -> None:
    upstreams.primary.inject(Failure(kind="drop"))
    received = []
    with pytest.raises(openai.APIError):
        with served.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "one two three"}], stream=True
        ) as stream:
            for chunk in stream:
                received.append(chunk)
    assert received, "chunks before the cut were delivered"
    assert upstreams.backup.calls["/v1/chat/completions"] == 0

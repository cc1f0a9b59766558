"""Indexing attached files through a durable ``orchestrator.queue``: the attach enqueues a
``vectors.file`` message and whatever consumes the queue indexes the file — a Redis
Streams consumer inside the app (real Redis), or the Lambda bridge's SQS path (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from aiservice.platforms.events import ActionContext
from aiservice.platforms.lambda_events import handle_sqs
from tests.support.redis_keys import REDIS_URL, redis_namespace

from ..conftest import MakeSettings, app_client
from .test_vector_stores_sdk import DOCS, sdk

SQS_SAMPLE = Path(__file__).resolve().parents[1] / "platforms" / "events" / "aws" / "sqsEvent.json"


@pytest.fixture
def namespace() -> Iterator[str]:
    with redis_namespace("test-vectors-queue") as name:
        yield name


async def test_redis_streams_consumer_indexes_attached_files(
    make_settings: MakeSettings, vector_config: dict[str, Any], namespace: str
) -> None:
    settings = make_settings(
        {
            **vector_config,
            "cache": {"backend": "redis", "url": REDIS_URL, "namespace": namespace},
            "orchestrator": {
                "queue": {"backend": "redis-streams", "redis_streams": {"block_ms": 50}}
            },
        }
    )
    async with app_client(settings) as http:
        vectors = http._transport.app.state.aiservice.vectors  # type: ignore[attr-defined]
        assert vectors.enqueue is not None
        vectors.submit = lambda work: pytest.fail("indexed in-process, not by the queue")
        client = sdk(http)
        store = await client.vector_stores.create(name="queued")
        for name in ("paris.txt", "python.txt"):
            uploaded = await client.files.create(
                file=(name, DOCS[name].encode()), purpose="assistants"
            )
            attached = await client.vector_stores.files.create_and_poll(
                vector_store_id=store.id, file_id=uploaded.id, poll_interval_ms=20
            )
            assert attached.status == "completed", attached.last_error
        page = await client.vector_stores.search(
            vector_store_id=store.id, query="When was the Eiffel Tower completed?"
        )
        assert page.data[0].filename == "paris.txt"

    stream = redis.Redis.from_url(REDIS_URL)
    try:
        info: Any = stream.xinfo_stream(f"{namespace}:orch:queue")
        assert info["entries-added"] == 2  # one message per attach went through the stream
        assert info["length"] == 0  # each acknowledged and deleted
    finally:
        stream.close()


@pytest.fixture
def sqs() -> Iterator[tuple[Any, str]]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        url = client.create_queue(QueueName="aiservice-work")["QueueUrl"]
        yield client, url


def _sqs_record(message: dict[str, Any]) -> dict[str, Any]:
    template = json.loads(SQS_SAMPLE.read_text())["Records"][0]
    return {**template, "messageId": message["MessageId"], "body": message["Body"]}


async def test_sqs_message_indexes_the_file_on_the_lambda_path(
    make_settings: MakeSettings, vector_config: dict[str, Any], sqs: tuple[Any, str]
) -> None:
    client, url = sqs
    settings = make_settings(
        {**vector_config, "orchestrator": {"queue": {"backend": "sqs", "sqs": {"url": url}}}},
        {"AWS_REGION": "us-east-1"},
    )
    async with app_client(settings) as http:
        runtime = http._transport.app.state.aiservice  # type: ignore[attr-defined]
        api = sdk(http)
        store = await api.vector_stores.create(name="lambda")
        uploaded = await api.files.create(
            file=("rivers.md", DOCS["rivers.md"].encode()), purpose="assistants"
        )
        attached = await api.vector_stores.files.create(
            vector_store_id=store.id, file_id=uploaded.id
        )
        assert attached.status == "in_progress"

        received = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert [json.loads(m["Body"]) for m in received] == [
            {"kind": "vectors.file", "vector_store_id": store.id, "file_id": uploaded.id}
        ]
        still = await api.vector_stores.files.retrieve(uploaded.id, vector_store_id=store.id)
        assert still.status == "in_progress"  # nothing indexed it in-process

        # What the Lambda bridge does with an SQS batch: route each record by kind.
        bad = {"MessageId": "m-bad", "Body": json.dumps({"kind": "vectors.file"})}
        event = {"Records": [_sqs_record(received[0]), _sqs_record(bad)]}
        ctx = ActionContext(runtime=runtime, request=None, resolve=None)  # type: ignore[arg-type]
        answer = await handle_sqs(ctx, event, {})
        assert answer == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}

        done = await api.vector_stores.files.retrieve(uploaded.id, vector_store_id=store.id)
        assert done.status == "completed", done.last_error
        page = await api.vector_stores.search(
            vector_store_id=store.id, query="largest hot desert", max_num_results=1
        )
        assert page.data[0].content[0].text.startswith("# Deserts")

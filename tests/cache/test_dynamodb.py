"""The DynamoDB backend against a moto server, with the table schema serverless.yml creates.

moto's in-process mock is not thread-safe (two concurrent UpdateItem calls can lose an
update), whereas DynamoDB serialises writes per item. So the backend talks over real HTTP
(``cache.endpoint_url``) to moto's WSGI app served one request at a time.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from aiservice.cache.dynamodb import TABLE_SCHEMA, TTL_ATTRIBUTE, DynamoDBBackend
from aiservice.config import Settings

from .contract import Advance, MakeBackend, StateBackendContract

TABLE = "aiservice-test-state"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=False, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> Iterator[str]:
    """Fake credentials and a fresh table; yields the endpoint URL."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)
    client.create_table(TableName=TABLE, **TABLE_SCHEMA)
    client.update_time_to_live(
        TableName=TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    try:
        yield moto_endpoint
    finally:
        client.delete_table(TableName=TABLE)
        client.close()


def dynamodb(
    endpoint: str, clock: FakeClock, namespace: str, table: str = TABLE
) -> DynamoDBBackend:
    settings = Settings(
        cache={
            "backend": "dynamodb",
            "table": table,
            "region": "us-east-1",
            "endpoint_url": endpoint,
            "namespace": namespace,
            # Calls queue behind one another on the one-at-a-time moto server: a loaded
            # machine must not turn that queue into client timeouts (and retries).
            "timeout_ms": 2000,
        }
    )
    return DynamoDBBackend(settings, clock=clock)


class TestDynamoDBContract(StateBackendContract):
    ttl = 5.0  # DynamoDB TTLs are whole epoch seconds

    @pytest.fixture
    def make_backend(self, aws: str, clock: FakeClock) -> Iterator[MakeBackend]:
        run = uuid.uuid4().hex[:8]
        made: list[DynamoDBBackend] = []

        def make(namespace: str) -> DynamoDBBackend:
            made.append(dynamodb(aws, clock, f"{run}-{namespace}"))
            return made[-1]

        yield make
        for backend in made:
            backend._client.close()

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Advance:
        async def advance(seconds: float) -> None:
            clock.now += seconds

        return advance


async def test_items_carry_the_ttl_attribute(aws: str, clock: FakeClock) -> None:
    backend = dynamodb(aws, clock, "ns")
    await backend.set("k", b"v", ttl=120)
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=aws)
    item = client.get_item(TableName=TABLE, Key={"pk": {"S": "ns:k"}})["Item"]
    client.close()
    await backend.aclose()
    assert int(item[TTL_ATTRIBUTE]["N"]) == int(clock.now + 120)
    assert item["v"]["B"] == b"v"


async def test_ping_fails_when_the_table_is_missing(aws: str, clock: FakeClock) -> None:
    backend = dynamodb(aws, clock, "ns", table="no-such-table")
    with pytest.raises(Exception, match="ResourceNotFound"):
        await backend.ping()
    await backend.aclose()

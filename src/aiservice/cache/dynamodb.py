"""DynamoDB backend: shared state for Lambda deployments without a VPC (no Redis reachable).

Table schema (created by ``serverless.yml``; :data:`TABLE_SCHEMA` is the same definition)::

    partition key  pk          S   "<namespace>:<key>"
    attribute      v           B   the value (get/set/add)
    attribute      n           N   the counter (incr/consume)
    TTL attribute  expires_at  N   epoch seconds; DynamoDB TTL enabled on it

DynamoDB deletes expired items lazily (up to days later), so every read also checks
``expires_at`` itself. Billing mode PAY_PER_REQUEST. boto3 is blocking: calls run in a
worker thread. ``consume`` is one ``TransactWriteItems`` (all counters or none).

IAM: ``dynamodb:GetItem``, ``PutItem``, ``UpdateItem``, ``DeleteItem`` and
``ConditionCheckItem`` on the table (transactions are authorised per item action).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .base import Consume, ConsumeResult, check_consume

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = ["TABLE_SCHEMA", "DynamoDBBackend"]

DEFAULT_TABLE = "aiservice-state"

TABLE_SCHEMA: dict[str, Any] = {
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "BillingMode": "PAY_PER_REQUEST",
}
TTL_ATTRIBUTE = "expires_at"


class DynamoDBBackend:
    name = "dynamodb"

    def __init__(
        self,
        settings: Settings,
        secrets: SecretResolver | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import boto3
        from botocore.config import Config

        cfg = settings.cache
        timeout = max(cfg.timeout_ms / 1000 * 4, 1.0)
        self._client = boto3.session.Session().client(
            "dynamodb",
            # None: boto3's own chain (AWS_REGION on Lambda).
            region_name=cfg.region or settings.secrets.aws_region,
            endpoint_url=cfg.endpoint_url,
            config=Config(
                connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2}
            ),
        )
        self._errors = self._client.exceptions
        self.table = cfg.table or DEFAULT_TABLE
        self._prefix = f"{cfg.namespace}:"
        self._default_ttl = float(cfg.ttl)
        self._clock = clock

    # -- helpers ---------------------------------------------------------------------------

    def _pk(self, key: str) -> dict[str, Any]:
        return {"pk": {"S": self._prefix + key}}

    def _expiry(self, ttl: float) -> dict[str, str]:
        return {"N": str(int(self._clock() + ttl) if ttl > 0 else 2**40)}

    def _now(self) -> dict[str, str]:
        return {"N": str(int(self._clock()))}

    def _live(self, item: dict[str, Any] | None) -> dict[str, Any] | None:
        if item is None or float(item[TTL_ATTRIBUTE]["N"]) <= self._clock():
            return None
        return item

    def _raw_item(self, key: str) -> dict[str, Any] | None:
        out = self._client.get_item(TableName=self.table, Key=self._pk(key), ConsistentRead=True)
        item: dict[str, Any] | None = out.get("Item")
        return item

    def _get_item(self, key: str) -> dict[str, Any] | None:
        return self._live(self._raw_item(key))

    # -- blocking operations (run in a thread) ---------------------------------------------

    def _get(self, key: str) -> bytes | None:
        item = self._get_item(key)
        if item is None or "v" not in item:
            return None
        value: bytes = item["v"]["B"]
        return value

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        ttl = self._default_ttl if ttl is None else ttl
        item = {**self._pk(key), "v": {"B": value}, TTL_ATTRIBUTE: self._expiry(ttl)}
        self._client.put_item(TableName=self.table, Item=item)

    def _add(self, key: str, value: bytes, ttl: float) -> bool:
        item = {**self._pk(key), "v": {"B": value}, TTL_ATTRIBUTE: self._expiry(ttl)}
        try:
            self._client.put_item(
                TableName=self.table,
                Item=item,
                # An expired item that DynamoDB has not deleted yet counts as absent.
                ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
                ExpressionAttributeValues={":now": self._now()},
            )
        except self._errors.ConditionalCheckFailedException:
            return False
        return True

    def _compare_and_set(self, key: str, expected: bytes, value: bytes, ttl: float) -> bool:
        item = {**self._pk(key), "v": {"B": value}, TTL_ATTRIBUTE: self._expiry(ttl)}
        try:
            self._client.put_item(
                TableName=self.table,
                Item=item,
                # Live and holding ``expected``: an expired item that DynamoDB has not
                # deleted yet is absent, as for ``add``.
                ConditionExpression="v = :expected AND expires_at > :now",
                ExpressionAttributeValues={":expected": {"B": expected}, ":now": self._now()},
            )
        except self._errors.ConditionalCheckFailedException:
            return False
        return True

    def _delete(self, key: str) -> None:
        self._client.delete_item(TableName=self.table, Key=self._pk(key))

    def _drop_expired(self, key: str) -> None:
        try:
            self._client.delete_item(
                TableName=self.table,
                Key=self._pk(key),
                ConditionExpression="expires_at <= :now",
                ExpressionAttributeValues={":now": self._now()},
            )
        except self._errors.ConditionalCheckFailedException:
            pass  # someone else reset or recreated it: fine

    def _counter_update(self, item: Consume, *, check: bool) -> dict[str, Any]:
        """One transact/update entry: charge ``item`` if live (and, if ``check``, in limit)."""
        condition = "attribute_not_exists(pk) OR expires_at > :now"
        values: dict[str, Any] = {
            ":now": self._now(),
            ":amt": {"N": str(item.amount)},
            ":zero": {"N": "0"},
            ":exp": self._expiry(item.ttl),
        }
        if check and item.limit is not None:
            condition = (
                "attribute_not_exists(pk) OR (expires_at > :now AND "
                "(attribute_not_exists(n) OR n <= :max))"
            )
            values[":max"] = {"N": str(item.limit - item.required)}
        return {
            "TableName": self.table,
            "Key": self._pk(item.key),
            "UpdateExpression": "SET n = if_not_exists(n, :zero) + :amt, "
            "expires_at = if_not_exists(expires_at, :exp)",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }

    def _counters(self, keys: Sequence[str]) -> list[int]:
        items = [self._get_item(k) for k in keys]
        return [int(i["n"]["N"]) if i is not None and "n" in i else 0 for i in items]

    def _incr(self, key: str, amount: int, ttl: float) -> int:
        request = self._counter_update(Consume(key, amount, ttl), check=False)
        for _ in range(3):
            try:
                out = self._client.update_item(**request, ReturnValues="ALL_NEW")
                return int(out["Attributes"]["n"]["N"])
            except self._errors.ConditionalCheckFailedException:
                self._drop_expired(key)  # expired but not yet deleted: restart the counter
        raise RuntimeError(f"counter {key!r} kept expiring under contention")

    def _consume(self, items: Sequence[Consume]) -> ConsumeResult:
        keys = [i.key for i in items]
        if any(i.limit is not None and i.required > i.limit for i in items):
            return ConsumeResult(False, tuple(self._counters(keys)))
        for _ in range(3):
            try:
                updates: Any = [{"Update": self._counter_update(i, check=True)} for i in items]
                # botocore retries a timed-out call with the same token, which DynamoDB
                # answers without applying the transaction again: no double charge.
                self._client.transact_write_items(
                    TransactItems=updates, ClientRequestToken=uuid.uuid4().hex
                )
            except self._errors.TransactionCanceledException:
                raw = [self._raw_item(k) for k in keys]
                expired = [
                    k for k, item in zip(keys, raw, strict=True) if item and not self._live(item)
                ]
                if not expired:
                    values = self._counters(keys)
                    if not check_consume(items, values):
                        return ConsumeResult(False, tuple(values))
                for key in expired:
                    self._drop_expired(key)
                continue
            return ConsumeResult(True, tuple(self._counters(keys)))
        raise RuntimeError("rate-limit counters kept expiring under contention")

    # -- StateBackend ----------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, key)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await asyncio.to_thread(self._set, key, value, ttl)

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        return await asyncio.to_thread(self._add, key, value, ttl)

    async def compare_and_set(self, key: str, expected: bytes, value: bytes, ttl: float) -> bool:
        return await asyncio.to_thread(self._compare_and_set, key, expected, value, ttl)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    async def incr(self, key: str, amount: int, ttl: float) -> int:
        return await asyncio.to_thread(self._incr, key, amount, ttl)

    async def consume(self, items: Sequence[Consume]) -> ConsumeResult:
        return await asyncio.to_thread(self._consume, items)

    async def ping(self) -> None:
        # GetItem, not DescribeTable: the function's role only grants item operations.
        await asyncio.to_thread(self._raw_item, "__ping__")

    async def aclose(self) -> None:
        self._client.close()

"""``redis-streams``: a Redis stream read by a consumer group that runs in every instance.

Containers and Kubernetes replicas share one Redis; each instance is one consumer of the
group (its name is unique per process). The life of an entry:

* ``XADD`` on enqueue; ``XREADGROUP ... >`` delivers it to exactly one consumer, which
  runs the execution (at most ``concurrency`` at a time per instance);
* while it runs, the consumer renews its claim (``XCLAIM ... JUSTID`` resets the idle
  time) every third of ``claim_after``;
* on finish: ``XACK`` + ``XDEL`` (the stream holds only work not yet done);
* if the handler raised (the execution is busy elsewhere, the state store is down), the
  entry stays pending and unrenewed;
* a consumer that died (SIGKILL, lost node) stops renewing: after ``claim_after`` seconds
  any live instance takes its entries over with ``XAUTOCLAIM`` and resumes the executions
  from their last finished step. Each reclaim counts in ``aiservice_queue_redeliveries_total``;
* an entry delivered ``max_deliveries`` times without being acknowledged (its handler
  failed each time, or its consumers kept dying) is moved to the dead-letter stream
  instead (``aiservice_queue_dead_letters_total``), as SQS's redrive policy does.

On a graceful stop the instance stops reading, lets running executions finish for
``stop_grace`` seconds, then cancels the rest and marks their entries idle, so another
instance reclaims them at its next pass instead of after ``claim_after``.

On ``cache.url`` with ``cache.cluster`` the client is a Redis Cluster client and both
streams are named ``{<namespace>}:<stream>``: one hash slot, so the transaction that moves
an entry to the dead-letter stream (XADD there, XACK + XDEL here) is not ``CROSSSLOT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from .base import DEAD_LETTERS, REDELIVERIES, Handler, Message, QueueStats, cancel_and_wait

if TYPE_CHECKING:
    from ..cache.redis import Client
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = ["RedisStreamsQueue"]

log = logging.getLogger("aiservice.queues")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
_FIELD = b"data"
_DEAD_LETTER_MAXLEN = 10_000


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStreamsQueue:
    name = "redis-streams"
    durable = True
    pull = True

    def __init__(self, settings: Settings, secrets: SecretResolver | None = None) -> None:
        from ..config.queues import effective_queue

        self.cfg = effective_queue(settings.orchestrator).redis_streams
        self._url = self.cfg.url or settings.cache.url or DEFAULT_URL
        self._password = None if self.cfg.url else settings.cache.password
        # cache.cluster describes cache.url; a queue with its own url is a single server.
        self._cluster = settings.cache.cluster and not self.cfg.url
        self._secrets = secrets
        space = f"{{{settings.cache.namespace}}}" if self._cluster else settings.cache.namespace
        self.stream = f"{space}:{self.cfg.stream}"
        self.dead_letter = f"{space}:{self.cfg.dead_letter_stream}"
        self.group = self.cfg.group
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._client: Client | None = None
        self._handler: Handler | None = None
        self._running: dict[bytes, asyncio.Task[None]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._cursor: Any = "0-0"
        self._next_cleanup = 0.0

    # -- connection ------------------------------------------------------------------------

    async def _redis(self) -> Client:
        if self._client is None:
            from redis.asyncio.cluster import RedisCluster

            from ..cache.redis import connect

            resolve = self._secrets.resolve if self._secrets else _literal
            options: dict[str, Any] = {
                # Above the XREADGROUP block time: a blocked read is not a dead socket.
                "socket_timeout": self.cfg.block_ms / 1000 + 5,
                "socket_connect_timeout": 5,
                "health_check_interval": 30,
            }
            if self._password:
                options["password"] = await resolve(self._password)
            client = connect(await resolve(self._url), cluster=self._cluster, **options)
            if isinstance(client, RedisCluster):
                # The slot map before the read and claim loops send concurrently (see
                # aiservice.cache.redis.RedisBackend._ready).
                await client.initialize()
            self._client = client
        return self._client

    async def _ensure_group(self) -> None:
        from redis.exceptions import ResponseError

        client = await self._redis()
        try:
            # From the start of the stream: entries added before any consumer existed count.
            await client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- Queue -----------------------------------------------------------------------------

    async def enqueue(self, message: Message) -> None:
        client = await self._redis()
        await client.xadd(self.stream, {_FIELD: message.body().encode()})

    async def start(self, handler: Handler) -> None:
        self._handler = handler
        self._stopping = False
        try:
            await self._ensure_group()
        except Exception as exc:  # Redis down at startup: the loops retry, the app serves
            log.warning("redis stream %s: %s: %s", self.stream, type(exc).__name__, exc)
        self._loops = [
            asyncio.create_task(self._read_loop(), name="queue-read"),
            asyncio.create_task(self._claim_loop(), name="queue-claim"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for loop in self._loops:
            loop.cancel()
        if self._loops:  # bounded: a shutdown must not hang on a stuck connection
            await asyncio.wait(self._loops, timeout=5)
        self._loops = []
        running = dict(self._running)
        if running:
            _, late = await asyncio.wait(running.values(), timeout=self.cfg.stop_grace)
            if late:  # bounded too: a run that ignores cancellation must not hang shutdown
                stopping = [asyncio.create_task(cancel_and_wait(task)) for task in late]
                await asyncio.wait(stopping, timeout=5)
            left = [entry for entry, task in running.items() if task in late]
            if left:
                await self._hand_over(left)
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.aclose(), 5)

    async def stats(self) -> QueueStats:
        client = await self._redis()
        depth = int(await client.xlen(self.stream))
        first: Any = await client.xrange(self.stream, count=1)
        age = 0.0  # nothing waiting
        if first:
            millis = int(bytes(first[0][0]).split(b"-")[0])
            age = max(0.0, time.time() - millis / 1000)
        return QueueStats(depth=depth, oldest_age=age)

    async def check(self) -> str:
        await self._ensure_group()
        stats = await self.stats()
        return f"redis stream {self.stream} group {self.group} ({stats.depth} entries)"

    # -- consuming -------------------------------------------------------------------------

    def _free(self) -> int:
        return self.cfg.concurrency - len(self._running)

    async def _read_loop(self) -> None:
        while not self._stopping:
            try:
                if self._free() <= 0:
                    await asyncio.wait(
                        list(self._running.values()),
                        timeout=1.0,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    continue
                client = await self._redis()
                got: Any = await client.xreadgroup(
                    self.group,
                    self.consumer,
                    {self.stream: ">"},
                    count=self._free(),
                    block=self.cfg.block_ms,
                )
                for _, entries in got or []:
                    for entry_id, fields in entries:
                        self._dispatch(entry_id, fields, delivery=1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._recover(exc)

    async def _claim_loop(self) -> None:
        period = self.cfg.claim_after / 3
        while not self._stopping:
            await asyncio.sleep(period)
            try:
                await self._renew()
                await self._reclaim()
                await self._forget_departed()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._recover(exc)

    async def _recover(self, exc: Exception) -> None:
        from redis.exceptions import ResponseError

        log.warning("redis stream %s: %s: %s", self.stream, type(exc).__name__, exc)
        if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
            with contextlib.suppress(Exception):
                await self._ensure_group()  # the stream was deleted (FLUSHDB, expiry)
        await asyncio.sleep(1.0)

    async def _renew(self) -> None:
        """Reset the idle time of the entries this instance is running."""
        if self._running:
            client = await self._redis()
            ids: list[Any] = list(self._running)
            await client.xclaim(self.stream, self.group, self.consumer, 0, ids, justid=True)

    async def _reclaim(self) -> None:
        """Take over entries whose consumer stopped renewing them (it died)."""
        free = self._free()
        if free <= 0:
            return
        client = await self._redis()
        reply: Any = await client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            _ms(self.cfg.claim_after),
            start_id=self._cursor,
            count=free,
        )
        # A pass scans a bounded part of the pending list: the next one goes on from
        # where this one stopped ("0-0": it reached the end, start over).
        self._cursor = reply[0]
        claimed = [
            (entry_id, fields) for entry_id, fields in reply[1] if entry_id not in self._running
        ]
        if not claimed:
            return
        deliveries = await self._deliveries(client, [entry_id for entry_id, _ in claimed])
        for entry_id, fields in claimed:
            delivery = deliveries.get(entry_id, 2)
            if delivery > self.cfg.max_deliveries:
                await self._give_up(entry_id, fields, delivery - 1)
                continue
            REDELIVERIES.labels(self.name).inc()
            log.info("reclaimed queue entry %s (delivery %d)", entry_id.decode(), delivery)
            self._dispatch(entry_id, fields, delivery=delivery)

    async def _deliveries(self, client: Client, ids: list[bytes]) -> dict[bytes, int]:
        """How many times each entry has been delivered, from the group's pending list.

        XAUTOCLAIM counts a delivery, the renewals (``XCLAIM ... JUSTID``) do not, so this
        is the number of times a consumer was handed the entry, this one included."""
        rows: Any = await client.xpending_range(
            self.stream,
            self.group,
            min=min(ids),
            max=max(ids),
            count=len(ids) + len(self._running) + 16,
            consumername=self.consumer,
        )
        return {row["message_id"]: int(row["times_delivered"]) for row in rows}

    async def _give_up(self, entry_id: bytes, fields: Any, runs: int) -> None:
        """Move an entry that failed ``max_deliveries`` times to the dead-letter stream."""
        data = (fields or {}).get(_FIELD, b"")
        client = await self._redis()
        async with client.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.dead_letter,
                {_FIELD: data, b"entry": entry_id, b"deliveries": runs},
                maxlen=_DEAD_LETTER_MAXLEN,
                approximate=True,
            )
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()
        DEAD_LETTERS.labels(self.name).inc()
        log.error(
            "queue entry %s failed %d deliveries: moved to %s",
            entry_id.decode(),
            runs,
            self.dead_letter,
        )

    async def _forget_departed(self) -> None:
        """Delete consumers of stopped instances (each process is a new consumer).

        Only consumers with nothing pending and idle for ten ``claim_after``: deleting one
        that still owns entries would drop them from the group.
        """
        now = time.monotonic()
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + self.cfg.claim_after * 10
        client = await self._redis()
        idle_ms = _ms(self.cfg.claim_after * 10)
        consumers: Any = await client.xinfo_consumers(self.stream, self.group)
        for consumer in consumers:
            name = consumer["name"]
            name = name.decode() if isinstance(name, bytes) else str(name)
            if name != self.consumer and consumer["pending"] == 0 and consumer["idle"] > idle_ms:
                await client.xgroup_delconsumer(self.stream, self.group, name)

    def _dispatch(self, entry_id: bytes, fields: dict[bytes, bytes] | None, delivery: int) -> None:
        handler = self._handler
        assert handler is not None
        try:
            message = Message.parse((fields or {}).get(_FIELD, b""), delivery)
        except ValueError as exc:
            log.error("dropping malformed queue entry %s: %s", entry_id.decode(), exc)
            self._spawn(entry_id, self._ack(entry_id))
            return
        self._spawn(entry_id, self._run(handler, entry_id, message))

    def _spawn(self, entry_id: bytes, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name=f"queue-{entry_id.decode()}")
        self._running[entry_id] = task
        task.add_done_callback(lambda _: self._running.pop(entry_id, None))

    async def _run(self, handler: Handler, entry_id: bytes, message: Message) -> None:
        try:
            await handler(message)
        except asyncio.CancelledError:
            raise  # stays pending: handed over on stop, or reclaimed after claim_after
        except Exception as exc:
            log.warning(
                "%s not finished (%s: %s); delivered again after %gs",
                message.describe(),
                type(exc).__name__,
                exc,
                self.cfg.claim_after,
            )
            return
        await self._ack(entry_id)

    async def _ack(self, entry_id: bytes) -> None:
        client = await self._redis()
        async with client.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()

    async def _hand_over(self, entries: list[Any]) -> None:
        """Mark entries we stopped running as long idle: the next reclaim pass takes them."""
        with contextlib.suppress(Exception):
            client = await self._redis()
            await client.xclaim(
                self.stream,
                self.group,
                self.consumer,
                0,
                entries,
                idle=_ms(self.cfg.claim_after * 10),
                justid=True,
            )


async def _literal(value: str) -> str:
    return value

"""Redis backend (redis.asyncio): shared by every replica and Lambda instance in a VPC.

``cache.url`` (``redis://`` or ``rediss://`` for TLS) and ``cache.password`` may be secret
references. One connection pool per app; socket and connect timeouts follow
``cache.timeout_ms`` (with a floor, since the fail-open wrapper enforces the real bound).
Counters and rate limits run as Lua scripts: one round trip, atomic on the server. The two
moments of a cached LLM request (:mod:`aiservice.cache.batch`) are one script and one
pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from .base import Consume, ConsumeResult
from .batch import Lease, Lookup

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = ["RedisBackend"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"

# INCRBY that sets the expiry only when the counter is new, so a window never slides.
_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
"""

# ARGV: for each key, 4 values: amount, need, limit (-1 = none), ttl_ms.
# Returns {allowed (0/1), value1, value2, ...}.
_CONSUME = """
local n = #KEYS
local cur = {}
local ok = 1
for i = 1, n do
  cur[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  local need = tonumber(ARGV[(i - 1) * 4 + 2])
  local limit = tonumber(ARGV[(i - 1) * 4 + 3])
  if limit >= 0 and cur[i] + need > limit then ok = 0 end
end
if ok == 1 then
  for i = 1, n do
    local amount = tonumber(ARGV[(i - 1) * 4 + 1])
    if amount ~= 0 then
      cur[i] = redis.call('INCRBY', KEYS[i], amount)
      if redis.call('PTTL', KEYS[i]) == -1 then
        redis.call('PEXPIRE', KEYS[i], ARGV[(i - 1) * 4 + 4])
      end
    end
  end
end
local out = {ok}
for i = 1, n do out[i + 1] = cur[i] end
return out
"""


# The request's first round trip (aiservice.cache.batch.lookup). KEYS: entry, lease, then the
# counters; ARGV: lease owner ('' = no lease), lease ttl_ms, then 4 values per counter as
# in _CONSUME. Returns {allowed, entry or false, leased, value1, value2, ...}.
_LOOKUP = """
local n = #KEYS - 2
local cur = {}
local ok = 1
for i = 1, n do
  cur[i] = tonumber(redis.call('GET', KEYS[i + 2]) or '0')
  local need = tonumber(ARGV[(i - 1) * 4 + 4])
  local limit = tonumber(ARGV[(i - 1) * 4 + 5])
  if limit >= 0 and cur[i] + need > limit then ok = 0 end
end
local entry = false
local leased = 0
if ok == 1 then
  for i = 1, n do
    local amount = tonumber(ARGV[(i - 1) * 4 + 3])
    if amount ~= 0 then
      cur[i] = redis.call('INCRBY', KEYS[i + 2], amount)
      if redis.call('PTTL', KEYS[i + 2]) == -1 then
        redis.call('PEXPIRE', KEYS[i + 2], ARGV[(i - 1) * 4 + 6])
      end
    end
  end
  entry = redis.call('GET', KEYS[1])
  if not entry and ARGV[1] ~= '' then
    if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then leased = 1 end
  end
end
local out = {ok, entry, leased}
for i = 1, n do out[i + 3] = cur[i] end
return out
"""


def _consume_args(items: Sequence[Consume]) -> list[int]:
    args: list[int] = []
    for item in items:
        limit = -1 if item.limit is None else item.limit
        args += [item.amount, item.required, limit, _ms(item.ttl)]
    return args


def _resolve(secrets: SecretResolver | None, value: str | None) -> str | None:
    if value is None or secrets is None:
        return value
    from ..secrets.base import SecretError

    try:
        return secrets.cached(value)
    except SecretError:  # not resolved by the runtime yet (standalone use)
        return secrets.fetch_sync(value)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisBackend:
    name = "redis"

    def __init__(self, settings: Settings, secrets: SecretResolver | None = None) -> None:
        cfg = settings.cache
        url = _resolve(secrets, cfg.url) or DEFAULT_URL
        options: dict[str, Any] = {
            "max_connections": cfg.max_connections,
            # Generous floor: a timeout here closes the connection; the wrapper's bound is
            # the one that protects requests.
            "socket_timeout": max(cfg.timeout_ms / 1000 * 4, 0.5),
            "socket_connect_timeout": max(cfg.timeout_ms / 1000 * 4, 0.5),
            "health_check_interval": 30,
        }
        password = _resolve(secrets, cfg.password)
        if password:
            options["password"] = password
        self._client: aioredis.Redis = aioredis.Redis.from_url(url, **options)
        self._prefix = f"{cfg.namespace}:"
        self._default_ttl = float(cfg.ttl)
        self._incr = self._client.register_script(_INCR)
        self._consume = self._client.register_script(_CONSUME)
        self._lookup = self._client.register_script(_LOOKUP)

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(self._key(key))
        # decode_responses is off: the client returns bytes (its stubs also allow str).
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        ttl = self._default_ttl if ttl is None else ttl
        await self._client.set(self._key(key), value, px=_ms(ttl) if ttl > 0 else None)

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        stored = await self._client.set(self._key(key), value, px=_ms(ttl), nx=True)
        return bool(stored)

    async def delete(self, key: str) -> None:
        await self._client.delete(self._key(key))

    async def incr(self, key: str, amount: int, ttl: float) -> int:
        value = await self._incr(keys=[self._key(key)], args=[amount, _ms(ttl)])
        return int(value)

    async def consume(self, items: Sequence[Consume]) -> ConsumeResult:
        args = _consume_args(items)
        out = await self._consume(keys=[self._key(i.key) for i in items], args=args)
        return ConsumeResult(bool(int(out[0])), tuple(int(v) for v in out[1:]))

    async def lookup(self, key: str, *, lease: Lease | None, admit: Sequence[Consume]) -> Lookup:
        """Admission, entry and lease in one script: one round trip (see ``cache.batch``)."""
        keys = [self._key(key), self._key(lease.key if lease else key + ":nolease")]
        keys += [self._key(i.key) for i in admit]
        args: list[Any] = [lease.owner if lease else b"", _ms(lease.ttl) if lease else 1]
        out = await self._lookup(keys=keys, args=args + _consume_args(admit))
        allowed = bool(int(out[0]))
        admission = ConsumeResult(allowed, tuple(int(v) for v in out[3:])) if admit else None
        entry = out[1] if out[1] else None
        value = entry.encode() if isinstance(entry, str) else entry
        return Lookup(admission, value, bool(int(out[2])))

    async def store(
        self,
        key: str,
        value: bytes | None,
        ttl: float | None,
        *,
        release: str | None,
        charge: Sequence[Consume],
    ) -> None:
        """Entry, lease release and usage charge in one pipeline: one round trip."""
        pipe = self._client.pipeline(transaction=False)
        if value is not None:
            ttl = self._default_ttl if ttl is None else ttl
            pipe.set(self._key(key), value, px=_ms(ttl) if ttl > 0 else None)
        if release is not None:
            pipe.delete(self._key(release))
        if charge:
            # EVALSHA, not the Script object: a pipeline holding a Script first asks the
            # server whether it is loaded (another round trip); warm() loaded it.
            keys = [self._key(i.key) for i in charge]
            pipe.evalsha(self._consume.sha, len(keys), *keys, *_consume_args(charge))
        results = await pipe.execute(raise_on_error=False)
        for index, result in enumerate(results):
            if not isinstance(result, Exception):
                continue
            if charge and index == len(results) - 1 and "NOSCRIPT" in str(result):
                await self.consume(charge)  # scripts flushed since warm(): load and retry
            else:
                raise result

    async def ping(self) -> None:
        await self._client.ping()

    async def warm(self) -> None:
        """Connect and load the Lua scripts, so the first calls are one round trip each."""
        await self._client.ping()
        for script in (self._incr, self._consume, self._lookup):
            await self._client.script_load(script.script)

    async def aclose(self) -> None:
        await self._client.aclose()

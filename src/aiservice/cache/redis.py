"""Redis backend (redis.asyncio): shared by every replica and Lambda instance in a VPC.

``cache.url`` (``redis://`` or ``rediss://`` for TLS) and ``cache.password`` may be secret
references. One connection pool per app; socket and connect timeouts follow
``cache.timeout_ms`` (with a floor, since the fail-open wrapper enforces the real bound).
Counters and rate limits run as Lua scripts: one round trip, atomic on the server. The two
moments of a cached LLM request (:mod:`aiservice.cache.batch`) are one script each.

With ``cache.cluster`` the client is a :class:`~redis.asyncio.cluster.RedisCluster` seeded
from ``cache.url`` and every key is ``{<namespace>}:<key>``: one hash tag, so each script
touches a single slot (a cluster refuses multi-key commands across slots with
``CROSSSLOT``). A single server keeps ``<namespace>:<key>``, the names it always had.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from .base import Consume, ConsumeResult
from .batch import Lease, Lookup

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = ["Client", "RedisBackend", "connect"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"

# INCRBY that sets the expiry only when the counter is new, so a window never slides.
_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
"""

# The admission rule shared by the scripts below (prepended to each). Counters are
# KEYS[k0 + 1 ..], with 4 ARGV each from ARGV[a0 + 1]: amount, need, limit (-1 = none),
# ttl_ms. All or none: charged only when every limit holds. Returns ok (0/1), the values.
_COUNTERS = """
local function consume(k0, a0)
  local n = #KEYS - k0
  local cur = {}
  local ok = 1
  for i = 1, n do
    cur[i] = tonumber(redis.call('GET', KEYS[k0 + i]) or '0')
    local need = tonumber(ARGV[a0 + (i - 1) * 4 + 2])
    local limit = tonumber(ARGV[a0 + (i - 1) * 4 + 3])
    if limit >= 0 and cur[i] + need > limit then ok = 0 end
  end
  if ok == 1 then
    for i = 1, n do
      local amount = tonumber(ARGV[a0 + (i - 1) * 4 + 1])
      if amount ~= 0 then
        cur[i] = redis.call('INCRBY', KEYS[k0 + i], amount)
        if redis.call('PTTL', KEYS[k0 + i]) == -1 then
          redis.call('PEXPIRE', KEYS[k0 + i], ARGV[a0 + (i - 1) * 4 + 4])
        end
      end
    end
  end
  return ok, cur
end
"""

# KEYS: the counters. Returns {allowed (0/1), value1, value2, ...}.
_CONSUME = (
    _COUNTERS
    + """
local ok, cur = consume(0, 0)
local out = {ok}
for i = 1, #cur do out[i + 1] = cur[i] end
return out
"""
)

# The request's first round trip (aiservice.cache.batch.lookup). KEYS: entry, lease, then the
# counters; ARGV: lease owner ('' = no lease), lease ttl_ms, then 4 values per counter.
# Returns {allowed, entry or false, leased, value1, value2, ...}.
_LOOKUP = (
    _COUNTERS
    + """
local ok, cur = consume(2, 2)
local entry = false
local leased = 0
if ok == 1 then
  entry = redis.call('GET', KEYS[1])
  if not entry and ARGV[1] ~= '' then
    if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then leased = 1 end
  end
end
local out = {ok, entry, leased}
for i = 1, #cur do out[i + 3] = cur[i] end
return out
"""
)

# The request's second round trip (aiservice.cache.batch.store). KEYS: entry, lease, then
# the counters; ARGV: '1' to write the entry, the entry, its ttl_ms (0 = none), '1' to
# delete the lease, then 4 values per counter. A script, not a pipeline: a cluster client
# refuses EVALSHA in a pipeline, and this way a single server and a cluster share one path.
_STORE = (
    _COUNTERS
    + """
if ARGV[1] == '1' then
  if ARGV[3] == '0' then
    redis.call('SET', KEYS[1], ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  end
end
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
consume(2, 4)
return 1
"""
)


# Re-arm a key only while it holds ARGV[1] (compare-and-set). ARGV: expected, value, ttl_ms.
_SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

Client = aioredis.Redis | RedisCluster


def connect(url: str, *, cluster: bool, **options: Any) -> Client:
    """A single-server or cluster client for ``url`` (with a cluster: any one of its nodes;
    the client reads the slot map from it and follows ``MOVED`` redirections)."""
    if cluster:
        return RedisCluster.from_url(url, **options)
    # A blocking pool: past max_connections a call waits for a connection (within the
    # fail-open wrapper's bound) instead of failing at once with MaxConnectionsError, which
    # would take the backend for down and skip it for a cool-down under a mere burst (a
    # large embeddings batch is one call per input).
    pool = aioredis.BlockingConnectionPool.from_url(
        url, timeout=options.get("socket_timeout"), **options
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool


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
        self._client: Client = connect(url, cluster=cfg.cluster, **options)
        self._unmapped = cfg.cluster  # the cluster's slot map is not read yet
        # A cluster gets the namespace as hash tag: every key of the deployment in one slot.
        self._prefix = f"{{{cfg.namespace}}}:" if cfg.cluster else f"{cfg.namespace}:"
        self._default_ttl = float(cfg.ttl)
        self._incr = self._client.register_script(_INCR)
        self._consume = self._client.register_script(_CONSUME)
        self._lookup = self._client.register_script(_LOOKUP)
        self._store = self._client.register_script(_STORE)
        self._swap = self._client.register_script(_SWAP)

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def _ready(self) -> None:
        """Read a cluster's slot map before the first command (until that succeeds).

        redis-py's cluster client, sent concurrent commands before its first
        ``initialize()``, fails some of them (``AttributeError`` on a connection closed
        under them: the contract's concurrent-``add`` test did); ``initialize()`` itself
        reads the map once, under a lock, and the calls then route by slot."""
        if self._unmapped and isinstance(self._client, RedisCluster):
            await self._client.initialize()
            self._unmapped = False

    async def get(self, key: str) -> bytes | None:
        await self._ready()
        value = await self._client.get(self._key(key))
        # decode_responses is off: the client returns bytes (its stubs also allow str).
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self._ready()
        ttl = self._default_ttl if ttl is None else ttl
        await self._client.set(self._key(key), value, px=_ms(ttl) if ttl > 0 else None)

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        await self._ready()
        stored = await self._client.set(self._key(key), value, px=_ms(ttl), nx=True)
        return bool(stored)

    async def compare_and_set(self, key: str, expected: bytes, value: bytes, ttl: float) -> bool:
        await self._ready()
        stored = await self._swap(keys=[self._key(key)], args=[expected, value, _ms(ttl)])
        return bool(int(stored))

    async def delete(self, key: str) -> None:
        await self._ready()
        await self._client.delete(self._key(key))

    async def incr(self, key: str, amount: int, ttl: float) -> int:
        await self._ready()
        value = await self._incr(keys=[self._key(key)], args=[amount, _ms(ttl)])
        return int(value)

    async def consume(self, items: Sequence[Consume]) -> ConsumeResult:
        await self._ready()
        args = _consume_args(items)
        out = await self._consume(keys=[self._key(i.key) for i in items], args=args)
        return ConsumeResult(bool(int(out[0])), tuple(int(v) for v in out[1:]))

    async def lookup(self, key: str, *, lease: Lease | None, admit: Sequence[Consume]) -> Lookup:
        """Admission, entry and lease in one script: one round trip (see ``cache.batch``)."""
        await self._ready()
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
        """Entry, lease release and usage charge in one script: one round trip."""
        await self._ready()
        keys = [self._key(key), self._key(release if release is not None else key + ":nolease")]
        args: list[Any] = [b"0", b"", 0, b"1" if release is not None else b"0"]
        if value is not None:
            ttl = self._default_ttl if ttl is None else ttl
            args[:3] = [b"1", value, _ms(ttl) if ttl > 0 else 0]
        keys += [self._key(i.key) for i in charge]
        await self._store(keys=keys, args=args + _consume_args(charge))

    async def ping(self) -> None:
        await self._ready()
        await self._client.ping()

    async def warm(self) -> None:
        """Connect and load the Lua scripts, so the first calls are one round trip each."""
        await self._ready()
        await self._client.ping()
        # On a cluster SCRIPT LOAD goes to every primary: any of them may own the slot later.
        for script in (self._incr, self._consume, self._lookup, self._store, self._swap):
            await self._client.script_load(script.script)

    async def aclose(self) -> None:
        await self._client.aclose()

"""Secret references (``secret://<scheme>/<name>``), the source protocol and the resolver.

A :class:`SecretSource` only does I/O: fetch one name. :class:`SecretResolver` adds what
every source needs: lazy construction per scheme, a TTL cache, keep-last-good on refresh
failure, and registration of every value with the log redactor. Sources are looked up in
:data:`SOURCES` by scheme and imported on first use, so boto3 or the Google client are
imported only when a reference of their kind exists.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ..config import SECRET_PREFIX, settings_strings
from ..errors import SecretError  # defined at the ground: security catches it too
from ..observability.redact import register_secret
from ..registry import Registry

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "SOURCES",
    "SecretError",
    "SecretRef",
    "SecretResolver",
    "SecretSource",
    "find_references",
    "injected_variable",
    "is_reference",
]

log = logging.getLogger("aiservice.secrets")


class SecretRef(NamedTuple):
    scheme: str
    name: str
    raw: str

    @classmethod
    def parse(cls, raw: str) -> SecretRef:
        if not raw.startswith(SECRET_PREFIX):
            raise SecretError(f"{raw!r} is not a secret reference (expected {SECRET_PREFIX}...)")
        scheme, sep, name = raw[len(SECRET_PREFIX) :].partition("/")
        if not scheme or not sep or not name:
            raise SecretError(f"malformed secret reference {raw!r}: use secret://<source>/<name>")
        return cls(scheme, name, raw)


class SecretSource(Protocol):
    """Fetches one secret by name. May block: the resolver calls it in a worker thread."""

    def fetch(self, name: str) -> str: ...


SourceFactory = Callable[["Settings"], SecretSource]

SOURCES: Registry[SourceFactory] = Registry("secret source", group="aiservice.secrets")
SOURCES.register("env", "aiservice.secrets.env:EnvSource")
SOURCES.register("file", "aiservice.secrets.file:FileSource")
SOURCES.register(
    "aws-sm", "aiservice.secrets.aws:SecretsManagerSource", "pip install 'aiservice[aws]'"
)
SOURCES.register(
    "aws-ssm", "aiservice.secrets.aws:ParameterStoreSource", "pip install 'aiservice[aws]'"
)
SOURCES.register(
    "gcp-sm", "aiservice.secrets.gcp:SecretManagerSource", "pip install 'aiservice[gcp]'"
)


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SECRET_PREFIX)


# References that live outside the settings' own keys, by ``module:function(settings)``.
# Flows are the built-in one: their templates (``${secrets.env.X}``) and files (flows_dir)
# hold references the settings tree does not show as plain values.
REFERENCE_FINDERS: tuple[str, ...] = ("aiservice.orchestrator.references:flow_references",)


def find_references(settings: Settings) -> list[tuple[str, str]]:
    """Every ``(where, reference)`` the app resolves: the settings' keys in document order
    (``flows`` excepted), then each of :data:`REFERENCE_FINDERS` (flows)."""
    strings = settings_strings(settings, exclude=frozenset({"flows"}))
    found = [(path, value) for path, value in strings if is_reference(value)]
    for target in REFERENCE_FINDERS:
        module, _, name = target.partition(":")
        found += getattr(importlib.import_module(module), name)(settings)
    return found


def injected_variable(raw: str) -> str:
    """The variable a platform may fill with the value of reference ``raw``.

    ``secret://gcp-sm/webhook-key`` -> ``SECRET__GCP_SM__WEBHOOK_KEY``. Deploy manifests
    inject a platform secret under this name (``--set-secrets``) where no config key can
    carry the value (flow templates), so startup makes no Secret Manager call for it.
    """
    ref = SecretRef.parse(raw)
    parts = (ref.scheme, ref.name)
    return "SECRET__" + "__".join(re.sub(r"[^A-Z0-9]+", "_", p.upper()).strip("_") for p in parts)


@dataclass(slots=True)
class _Entry:
    value: str
    fetched_at: float


class SecretResolver:
    """Resolves references through their sources with a TTL cache.

    ``await resolve(value)`` returns literals unchanged; a reference is fetched on first use
    and again once older than ``ttl`` seconds. If a refresh fails the last good value is
    kept and a warning logged; only a first fetch failure raises :class:`SecretError`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self.ttl = settings.secrets.ttl if ttl is None else ttl
        self._clock = clock
        self._sources: dict[str, SecretSource] = {}
        # Sources are built from worker threads (startup resolves references concurrently);
        # the lock keeps it to one client per scheme.
        self._sources_lock = threading.Lock()
        self._cache: dict[str, _Entry] = {}
        # One lock per reference, held in the worker thread around the fetch: concurrent
        # callers (any event loop, or plain threads) wait for one fetch instead of each
        # calling the store. Thread locks, unlike asyncio ones, are bound to no event loop.
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def source(self, scheme: str) -> SecretSource:
        """The source for ``scheme``, built on first use (imports its SDK only then)."""
        with self._sources_lock:
            if scheme not in self._sources:
                try:
                    factory = SOURCES.get(scheme)
                except (LookupError, ImportError) as exc:
                    raise SecretError(str(exc)) from exc
                try:
                    self._sources[scheme] = factory(self._settings)
                except SecretError:
                    raise
                except Exception as exc:  # a broken plug-in must not crash with a traceback
                    raise SecretError(f"cannot create {scheme} source: {_reason(exc)}") from exc
            return self._sources[scheme]

    def fetch_sync(self, raw: str) -> str:
        """Fetch one reference now, bypassing the cache (CLI, startup in sync code)."""
        ref = SecretRef.parse(raw)
        injected = self._settings.environ.get(injected_variable(raw))
        try:
            value = injected if injected is not None else self.source(ref.scheme).fetch(ref.name)
        except SecretError as exc:
            raise SecretError(f"cannot resolve {raw}: {exc}") from exc
        except Exception as exc:  # sources raise their SDK's errors; name the ref, not a value
            raise SecretError(f"cannot resolve {raw}: {_reason(exc)}") from exc
        _register(value)
        self._cache[raw] = _Entry(value, self._clock())
        return value

    def cached(self, value: str) -> str:
        """The current value without I/O: literals as-is, references from the cache."""
        if not is_reference(value):
            return value
        entry = self._cache.get(value)
        if entry is None:
            raise SecretError(f"{value} has not been resolved yet")
        return entry.value

    async def resolve(self, value: str) -> str:
        """The current value of ``value``: a literal as-is, a reference from cache or source."""
        if not is_reference(value):
            return value
        entry = self._fresh(value)
        if entry is not None:
            return entry.value
        return await asyncio.to_thread(self._refresh, value)

    def expire_all(self) -> None:
        """Treat every cached value as expired: the next resolve fetches it again, and keeps
        the old value if that fetch fails (after a SnapStart restore, where the monotonic
        clock the TTL runs on says nothing about how old the snapshot is)."""
        for entry in self._cache.values():
            entry.fetched_at = float("-inf")

    def _fresh(self, raw: str) -> _Entry | None:
        entry = self._cache.get(raw)
        if entry is not None and self._clock() - entry.fetched_at < self.ttl:
            return entry
        return None

    def _refresh(self, raw: str) -> str:
        """Fetch ``raw`` once for all waiting callers; keep the last good value on failure."""
        with self._locks_guard:
            lock = self._locks.setdefault(raw, threading.Lock())
        with lock:
            fresh = self._fresh(raw)
            if fresh is not None:  # another caller refreshed it while this one waited
                return fresh.value
            stale = self._cache.get(raw)
            try:
                return self.fetch_sync(raw)
            except SecretError as exc:
                if stale is None:
                    raise
                log.warning("secret refresh failed, keeping last good value: %s", exc)
                # Retry on the next TTL boundary rather than on every call.
                stale.fetched_at = self._clock()
                return stale.value

    async def resolve_many(self, values: Iterable[str]) -> dict[str, str]:
        unique = list(dict.fromkeys(values))
        results = await asyncio.gather(*(self.resolve(v) for v in unique))
        return dict(zip(unique, results, strict=True))

    async def check_all(self) -> dict[str, SecretError | None]:
        """Resolve every reference in the settings; map each to its error or ``None``."""
        outcome: dict[str, SecretError | None] = {}
        refs = list(dict.fromkeys(ref for _, ref in find_references(self._settings)))

        async def one(ref: str) -> None:
            try:
                await self.resolve(ref)
                outcome[ref] = None
            except SecretError as exc:
                outcome[ref] = exc

        await asyncio.gather(*(one(r) for r in refs))
        return {ref: outcome[ref] for ref in refs}


def _register(value: str) -> None:
    """Mask ``value`` in logs, also in the escaped form a JSON log line carries it in.

    A value with a quote, backslash or newline (a PEM key, a JSON credential) is written
    escaped by the JSON formatter, so the raw value alone would never match.
    """
    register_secret(value)
    escaped = json.dumps(value, ensure_ascii=False)[1:-1]
    if escaped != value:
        register_secret(escaped)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

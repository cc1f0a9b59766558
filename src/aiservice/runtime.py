"""The per-app container of shared clients, built once by the lifespan and closed after.

Capabilities (cache, providers, orchestrator, ...) attach themselves in their ``start``
hook: they read ``runtime.settings``, resolve secrets through ``runtime.secrets``, set their
typed field (``runtime.state``, ``runtime.gateway``...), register health checks and push
their cleanup onto ``runtime.stack``.

The field types live in higher layers (the gateway, the orchestrator), so they are imported
for the type checker only: this module must not load them, or a service without flows would
import the orchestrator at startup. A field is ``None`` until its capability started, and
again after :meth:`Runtime.close`, so a restart (SnapStart restore) rebuilds every client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import ConfigError, Settings
from .secrets.base import SecretError, SecretResolver
from .security.apikeys import KeyStore
from .transport import limits as upstream_limits

if TYPE_CHECKING:
    from .cache.failopen import FailOpenBackend
    from .cache.ratelimit import RateLimiter
    from .llm.cache.responses import ResponseCache
    from .llm.gateway import Gateway
    from .orchestrator.service import Orchestrator
    from .vectors.service import VectorStores

__all__ = ["CheckResult", "HealthRegistry", "Runtime", "StartupError"]

log = logging.getLogger("aiservice.runtime")

HealthFn = Callable[[], Awaitable[Any]]


class StartupError(RuntimeError):
    """The app cannot start (an unresolvable secret, an invalid flow...). Names the cause."""


@dataclass(slots=True)
class CheckResult:
    name: str
    ok: bool
    required: bool
    latency_ms: float
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": "ok" if self.ok else "fail",
            "required": self.required,
            "latency_ms": round(self.latency_ms, 2),
        }
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(slots=True)
class _Check:
    fn: HealthFn
    required: bool
    timeout: float


@dataclass
class HealthRegistry:
    """Named readiness checks. A check passes when its coroutine returns without raising."""

    checks: dict[str, _Check] = field(default_factory=dict)

    def add(self, name: str, fn: HealthFn, *, required: bool = True, timeout: float = 2.0) -> None:
        self.checks[name] = _Check(fn, required, timeout)

    async def run(self) -> list[CheckResult]:
        async def one(name: str, check: _Check) -> CheckResult:
            start = time.perf_counter()
            try:
                result = await asyncio.wait_for(check.fn(), check.timeout)
                ok, detail = True, (result if isinstance(result, str) else None)
            except TimeoutError:
                ok, detail = False, f"timed out after {check.timeout:g}s"
            except Exception as exc:  # a failing dependency is a result, not a crash
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            elapsed = (time.perf_counter() - start) * 1000
            return CheckResult(name, ok, check.required, elapsed, detail)

        return list(await asyncio.gather(*(one(n, c) for n, c in self.checks.items())))


class Runtime:
    """Settings, secrets, health checks and one typed field per built capability."""

    # Set by ``aiservice.cache.state.start``: the shared-state backend (fail-open wrapped)
    # and the rate limiter, which runs on that backend.
    state: FailOpenBackend | None
    limiter: RateLimiter | None
    # Set by ``aiservice.api.openai_compat.start``: every configured provider, and the LLM
    # response cache on the shared state (when it started).
    gateway: Gateway | None
    response_cache: ResponseCache | None
    # Set by ``aiservice.api.orchestrate.start``, and only when flows are configured.
    orchestrator: Orchestrator | None
    # Set by ``aiservice.api.vector_stores.start``, and only when ``vectors.backend`` is set.
    vectors: VectorStores | None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.secrets = SecretResolver(settings)
        self.keys = KeyStore(settings, self.secrets)
        self.health = HealthRegistry()
        self.stack = AsyncExitStack()
        self.started = False
        self._clear()

    def _clear(self) -> None:
        # Every capability field: what ``stack`` closed must not stay reachable.
        self.state = None
        self.response_cache = None
        self.limiter = None
        self.gateway = None
        self.orchestrator = None
        self.vectors = None

    async def start(self, hooks: list[Callable[[Runtime], Awaitable[None]]]) -> None:
        """Resolve every secret reference (fail fast), then run the capabilities' hooks."""
        failures = {ref: err for ref, err in (await self.secrets.check_all()).items() if err}
        if failures:
            raise StartupError(
                "cannot resolve secret references: " + "; ".join(str(e) for e in failures.values())
            )
        try:
            await self.keys.verify()  # no placeholder or short API keys
        except ConfigError as exc:
            raise StartupError(str(exc)) from exc
        bounds = self.settings.limits  # process-wide, like the upstream session pool
        upstream_limits.configure(bounds.max_upstream_body_bytes, bounds.max_upstream_line_bytes)
        try:
            for hook in hooks:
                await hook(self)
        except SecretError as exc:
            await self._unwind()
            raise StartupError(str(exc)) from exc
        except BaseException:
            await self._unwind()
            raise
        self.started = True

    async def close(self) -> None:
        await self._unwind()
        self.started = False

    async def _unwind(self) -> None:
        try:
            await self.stack.aclose()
        finally:
            self._clear()

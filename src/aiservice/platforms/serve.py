"""Container bridge: serve any ASGI app with uvicorn the way Cloud Run and Kubernetes expect.

* binds ``0.0.0.0:$PORT`` (the caller passes the port; 8080 by default);
* on SIGTERM stops accepting connections and lets in-flight requests finish for
  ``graceful_shutdown`` seconds (Cloud Run kills the instance 10 s after SIGTERM), then
  runs the app's shutdown;
* trusts ``X-Forwarded-*`` from ``forwarded_allow_ips`` (the platform's front end), so
  the app sees the client's scheme and address.
"""

from __future__ import annotations

from typing import Any, cast

__all__ = ["serve", "uvicorn_config"]

STARTUP_PROBE_PATH = "/health/live"
"""Answered once startup finished: uvicorn accepts connections only after the lifespan."""


def uvicorn_config(
    app: Any,
    *,
    host: str = "0.0.0.0",
    port: int = 8080,
    graceful_shutdown: float = 8.0,
    forwarded_allow_ips: str = "*",
    **options: Any,
) -> Any:
    """The ``uvicorn.Config`` used by :func:`serve` (separate so it can be inspected)."""
    import uvicorn

    options.setdefault("log_config", None)
    options.setdefault("access_log", False)
    # Cloud Run's front end keeps connections open for reuse; outlive its idle timeout
    # so a request never lands on a connection uvicorn is closing. None: this default.
    if options.get("timeout_keep_alive") is None:
        options["timeout_keep_alive"] = 650
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="auto",
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        # uvicorn types it int, but it only waits: a fraction of a second is honoured.
        timeout_graceful_shutdown=cast(int, graceful_shutdown),
        **options,
    )


def serve(app: Any, **options: Any) -> None:
    """Run ``app`` until SIGTERM/SIGINT; see :func:`uvicorn_config` for ``options``."""
    import uvicorn

    uvicorn.Server(uvicorn_config(app, **options)).run()

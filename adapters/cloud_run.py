"""Container entry point (Cloud Run, Kubernetes, docker-compose, Lambda Web Adapter).

``python adapters/cloud_run.py`` serves the app on ``0.0.0.0:$PORT`` (8080 by default)
with graceful SIGTERM shutdown and trusted proxy headers. ``server.host`` and
``server.forwarded_allow_ips`` override the container defaults when set explicitly.
"""

from __future__ import annotations

from aiservice import create_app, load_settings
from aiservice.observability.logging import configure_logging
from aiservice.platforms.serve import serve

settings = load_settings()
configure_logging(settings.logging.level, settings.logging.format, server_loggers=True)
app = create_app(settings, configure_logs=False)


def main() -> None:
    server = settings.server
    explicit = server.model_fields_set
    serve(
        app,
        host=server.host if "host" in explicit else "0.0.0.0",
        port=server.port,
        graceful_shutdown=server.graceful_shutdown_seconds,
        forwarded_allow_ips=server.forwarded_allow_ips
        if "forwarded_allow_ips" in explicit
        else "*",
        h11_max_incomplete_event_size=server.max_header_bytes,
        timeout_keep_alive=server.keepalive_timeout_seconds,
        head_timeout=settings.limits.body_timeout_seconds,
    )


if __name__ == "__main__":
    main()

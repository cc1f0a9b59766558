"""``aiservice`` command line: serve, check, config show, version (and plug-in commands).

Exit codes: 0 success, 1 a check failed, 2 invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._version import __version__
from .config import Settings, redacted_dump
from .config.loader import settings_from_args
from .errors import ConfigError

__all__ = ["main"]

# Modules adding subcommands: each has ``register(subparsers) -> None`` and sets
# ``func`` on its parsers. Kept as strings so ``aiservice --help`` imports nothing heavy.
EXTRA_COMMANDS: tuple[str, ...] = (
    "aiservice.orchestrator.cli",
    "aiservice.deploy.cli",
    "aiservice.vector_cli",
)

Handler = Callable[[argparse.Namespace], int]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="YAML config file (default: ./aiservice.yaml)")
    parser.add_argument("-p", "--profile", help="profile overlay config/NAME.yaml")


def _app_factory() -> Any:
    """uvicorn factory for ``--reload`` / ``--workers`` (each worker loads settings itself)."""
    from .app import create_app

    return create_app()


async def verify_keys(settings: Settings) -> None:
    """Placeholder or short API keys are invalid configuration (exit 2), checked on the
    resolved values before anything starts."""
    from .secrets.base import SecretResolver
    from .security.apikeys import KeyStore

    await KeyStore(settings, SecretResolver(settings)).verify()


UVICORN_KEEPALIVE_SECONDS = 5
"""``aiservice serve``'s idle keep-alive when ``server.keepalive_timeout_seconds`` is unset
(uvicorn's default; the container bridge outlives Cloud Run's front end instead)."""


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    asyncio.run(verify_keys(settings))
    try:
        import uvicorn
    except ImportError:
        print("aiservice serve needs uvicorn: pip install 'aiservice[server]'", file=sys.stderr)
        return 2
    from .observability.logging import configure_logging
    from .platforms.serve import head_bounded_http, serve

    configure_logging(
        settings.logging.level,
        settings.logging.format,
        settings.logging.gcp_project,
        server_loggers=True,
    )
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    workers = args.workers or settings.server.workers
    reload = args.reload or settings.server.reload
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "proxy_headers": settings.server.proxy_headers,
        "forwarded_allow_ips": settings.server.forwarded_allow_ips,
        "timeout_graceful_shutdown": settings.server.graceful_shutdown_seconds,
        "h11_max_incomplete_event_size": settings.server.max_header_bytes,
        "http": head_bounded_http(),
        "log_config": None,
        "access_log": False,
    }
    if settings.server.keepalive_timeout_seconds is not None:
        common["timeout_keep_alive"] = settings.server.keepalive_timeout_seconds
    if reload or workers > 1:
        if common["http"] != "auto":
            # uvicorn configures each worker itself: the deadline travels in the protocol.
            from .platforms.http_head import with_head_timeout

            common["http"] = with_head_timeout(settings.limits.body_timeout_seconds)
        # Workers re-import the app, so the selection travels in the environment.
        if args.config:
            os.environ["AISERVICE_CONFIG"] = os.path.abspath(args.config)
        if args.profile:
            os.environ["AISERVICE_ENV"] = args.profile
        uvicorn.run(
            "aiservice.cli:_app_factory", factory=True, reload=reload, workers=workers, **common
        )
    else:
        # One process: the container bridge's server, so a request still running when the
        # shutdown grace ends gets the 503 envelope instead of uvicorn's plain-text 500.
        from .app import create_app

        options = {k: v for k, v in common.items() if k != "timeout_graceful_shutdown"}
        options.setdefault("timeout_keep_alive", UVICORN_KEEPALIVE_SECONDS)
        serve(
            create_app(settings, configure_logs=False),
            head_timeout=settings.limits.body_timeout_seconds,
            graceful_shutdown=settings.server.graceful_shutdown_seconds,
            **options,
        )
    return 0


def _table(rows: Sequence[tuple[str, str, str]]) -> str:
    header = ("CHECK", "STATUS", "DETAIL")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(2)]
    lines = [f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]}"]
    lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def cmd_check(args: argparse.Namespace) -> int:
    from .preflight import run_checks

    settings = settings_from_args(args)
    rows = asyncio.run(run_checks(settings, offline=args.offline, timeout=args.timeout))
    if args.json:
        print(json.dumps([{"check": a, "status": b, "detail": c} for a, b, c in rows], indent=2))
    else:
        print(_table(rows))
    failing = [name for name, status, _ in rows if status == "fail"]
    if failing:
        print(f"aiservice check: {len(failing)} failing: {', '.join(failing)}", file=sys.stderr)
    return 1 if failing else 0


def cmd_config_show(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    data = redacted_dump(settings)
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        import yaml

        print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


def cmd_version(_: argparse.Namespace) -> int:
    print(f"aiservice {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiservice", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"aiservice {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP service with uvicorn")
    _common(serve)
    serve.add_argument("--host", help="bind address (default: server.host)")
    serve.add_argument("--port", type=int, help="port (default: $PORT, then server.port)")
    serve.add_argument("--reload", action="store_true", help="reload on code changes")
    serve.add_argument("--workers", type=int, help="worker processes")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check", help="preflight: config, secrets, dependencies")
    _common(check)
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument(
        "--offline", action="store_true", help="static checks only: call no dependency"
    )
    check.add_argument(
        "--timeout", type=_positive, default=5.0, help="seconds per dependency (default 5)"
    )
    check.set_defaults(func=cmd_check)

    config = sub.add_parser("config", help="inspect configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = config_sub.add_parser("show", help="effective configuration, secrets redacted")
    _common(show)
    show.add_argument("--format", choices=["yaml", "json"], default="yaml")
    show.set_defaults(func=cmd_config_show)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=cmd_version)

    for name in EXTRA_COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"aiservice: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

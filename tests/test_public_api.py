"""The public API is a contract: changing it must be a deliberate edit of this list."""

import subprocess
import sys

import aiservice


def test_all_is_pinned() -> None:
    assert sorted(aiservice.__all__) == [
        "AIServiceError",
        "ConfigError",
        "Runtime",
        "Settings",
        "__version__",
        "create_app",
        "get_runtime",
        "load_settings",
    ]
    for name in aiservice.__all__:
        assert hasattr(aiservice, name)


def test_import_pulls_no_heavy_or_cloud_modules() -> None:
    # Empty namespace packages ("google" from a *-nspkg.pth) are created by the interpreter
    # at startup, not by us; only modules with code count. The OpenTelemetry *API* may be
    # loaded by FastAPI itself (fastapi.telemetry) when installed; the SDK never is by us.
    code = (
        "import sys, aiservice, aiservice.app, aiservice.cli;"
        "heavy = [n for n, m in sys.modules.items() if (n.split('.')[0] in "
        "('boto3', 'botocore', 'google', 'redis', 'uvicorn', 'mangum', 'functions_framework')"
        " or n.startswith(('opentelemetry.sdk', 'opentelemetry.exporter', 'opentelemetry.proto',"
        " 'aiservice.observability.otel')))"
        " and getattr(m, '__file__', None)];"
        "print(','.join(sorted(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

"""Third-party sources via entry points, and no cloud SDK imported unless referenced.

Both run in a fresh interpreter: entry points are scanned once per process, and this test
process has long since imported boto3 and the Google client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import aiservice

SRC = str(Path(aiservice.__file__).resolve().parent.parent)


def run_python(code: str, *extra_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISERVICE_")}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, extra_path), SRC])
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def write_plugin(root: Path) -> None:
    """An installed distribution in miniature: a module and its .dist-info."""
    (root / "vault_plugin.py").write_text(
        textwrap.dedent(
            """
            class VaultSource:
                def __init__(self, settings):
                    self.service = settings.service.name

                def fetch(self, name):
                    return f"{self.service}/{name[::-1]}"
            """
        )
    )
    dist = root / "vault_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vault-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[aiservice.secrets]\nvault = vault_plugin:VaultSource\n"
    )


def test_entry_point_source_is_found_and_used_by_the_resolver(tmp_path: Path) -> None:
    write_plugin(tmp_path)
    out = run_python(
        """
        import asyncio, json
        from aiservice import Settings
        from aiservice.secrets import SOURCES, SecretResolver

        settings = Settings(service={"name": "svc"})
        value = asyncio.run(SecretResolver(settings).resolve("secret://vault/kv/abc"))
        print(json.dumps({"names": SOURCES.names(), "value": value}))
        """,
        tmp_path,
    )
    result = json.loads(out)
    assert "vault" in result["names"]
    assert {"env", "file", "aws-sm", "aws-ssm", "gcp-sm"} <= set(result["names"])
    assert result["value"] == "svc/cba/vk"


def test_cloud_sdks_are_imported_only_when_a_reference_needs_them(tmp_path: Path) -> None:
    out = run_python(
        """
        import asyncio, json, sys
        from aiservice.secrets import SOURCES, SecretResolver
        from aiservice import Settings

        def heavy():
            # Namespace packages (google, google.cloud) are pre-created by .pth files of
            # other distributions; only modules with code count.
            roots = ("boto3", "botocore", "google", "grpc")
            return sorted({
                name.split(".")[0]
                for name, module in list(sys.modules.items())
                if name.split(".")[0] in roots and getattr(module, "__file__", None)
            })

        steps = {"import": heavy()}
        # A plain-http GCP endpoint means anonymous credentials: no ADC lookup here.
        secrets = {"gcp_endpoint": "http://127.0.0.1:9", "aws_region": "us-east-1"}
        settings = Settings(secrets=secrets)
        settings._environ = {"TOKEN": "env-token"}
        resolver = SecretResolver(settings)
        asyncio.run(resolver.resolve("secret://env/TOKEN"))
        steps["env reference"] = heavy()
        # Building the sources (the registry imports their modules) creates no client yet.
        resolver.source("aws-sm"), resolver.source("aws-ssm"), resolver.source("gcp-sm")
        steps["sources built"] = heavy()
        resolver.source("aws-sm").client()
        steps["aws client"] = heavy()
        resolver.source("gcp-sm").client()
        steps["gcp client"] = heavy()
        print(json.dumps(steps))
        """
    )
    steps = json.loads(out)
    assert steps["import"] == []
    assert steps["env reference"] == []
    assert steps["sources built"] == []
    assert steps["aws client"] == ["boto3", "botocore"]
    assert "google" in steps["gcp client"]

"""Settings for render tests: hermetic (no ambient environment, no .env)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aiservice.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]

SECRETS_CONFIG: dict[str, Any] = {
    "service": {"name": "ai-gw"},
    "auth": {"api_keys": ["secret://env/CLIENT_KEY"]},
    "providers": {
        "openai": {"type": "openai", "api_key": "secret://gcp-sm/openai-key"},
        "anthropic": {"type": "anthropic", "api_key": "secret://aws-sm/prod/anthropic#key"},
        "gemini": {"type": "gemini", "api_key": "secret://aws-ssm/prod/gemini"},
    },
    "models": {"gpt": [{"provider": "openai", "model": "gpt-4o-mini"}]},
    "deploy": {"gcp_project": "acme", "ollama_sidecar": True, "models_bucket": "acme-models"},
}

# Every threshold and duration away from its default (cache_cold's `for` makes its
# description add up to 90 minutes, fractional numbers test the literal formatting).
CUSTOM_ALERTS: dict[str, Any] = {
    "high_error_rate": {"threshold": 0.025, "for": "1h30m"},
    "high_latency_p99": {"threshold": 12.5, "for": "20m"},
    "upstream_latency_p99": {"threshold": 90, "for": "30s"},
    "daily_cost_high": {"threshold": 2500, "for": "1h"},
    "cache_cold": {"threshold": 0.2, "min_lookups_per_second": 0.005, "for": "1h"},
    "deployment_cooled_down": {"for": "10m"},
    "model_unavailable": {"for": "1m"},
    "many_fallbacks": {"threshold": 0, "for": "5m"},
}


@pytest.fixture
def settings_from(tmp_path: Path) -> Any:
    def make(data: dict[str, Any] | None = None, profile: str | None = None) -> Settings:
        path = tmp_path / "aiservice.yaml"
        path.write_text(yaml.safe_dump(data or {}))
        return load_settings(path, profile, environ={}, dotenv_file=None, cwd=tmp_path)

    return make

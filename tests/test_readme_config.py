"""The README's minimal configuration is valid: it loads, and its flow validates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aiservice.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_the_minimal_configuration_loads_and_its_flow_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(# aiservice\.yaml.*?)```", readme, re.S)
    assert block, "the README has no `# aiservice.yaml` example"
    (tmp_path / "aiservice.yaml").write_text(block.group(1))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLIENT_API_KEY", "readme-client-key-0123456789")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-readme-0123456789abcdef")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/15")
    assert main(["flows", "validate", "--config", "aiservice.yaml"]) == 0
    assert "score" in capsys.readouterr().out
    assert main(["config", "show", "--config", "aiservice.yaml"]) == 0
    shown = capsys.readouterr().out
    assert "gpt-4o-mini" in shown and "readme-client-key" not in shown

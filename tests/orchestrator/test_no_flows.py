"""Without flows the orchestrator costs nothing: no machinery imported, clear 404s."""

from __future__ import annotations

import subprocess
import sys

from ..conftest import MakeSettings
from .conftest import orchestrator_app


async def test_without_flows_orchestrate_and_executions_are_404(
    make_settings: MakeSettings,
) -> None:
    async with orchestrator_app(make_settings()) as (client, runtime):
        run = await client.post("/orchestrate/match_user", json={})
        execution = await client.get("/executions/abc")
        ready = await client.get("/health/ready")
    assert run.status_code == 404
    assert run.json()["error"]["code"] == "flow_not_found"
    assert "no flows are configured" in run.json()["error"]["message"]
    assert execution.status_code == 404
    assert execution.json()["error"]["code"] == "execution_not_found"
    assert "flows" not in ready.json()["checks"]
    assert runtime.orchestrator is None


def test_app_without_flows_does_not_import_the_executor() -> None:
    code = (
        "import sys, asyncio\n"
        "from aiservice import Settings, create_app\n"
        "app = create_app(Settings(), configure_logs=False)\n"
        "async def main():\n"
        "    async with app.router.lifespan_context(app):\n"
        "        pass\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('aiservice.orchestrator.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.strip()
    for heavy in ("executor", "service", "auth", "webhook", "loader", "expr"):
        assert f"aiservice.orchestrator.{heavy}'" not in loaded, loaded

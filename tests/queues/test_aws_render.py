"""``aiservice render --target lambda``: the rendered queue settings use the
``orchestrator.queue`` form (not the deprecated ``queue_url``) and load back as SQS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from aiservice.config import load_settings
from aiservice.config.queues import effective_queue
from aiservice.deploy.aws import render_lambda

from ..conftest import MakeSettings

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/work"


def _env(settings: Any) -> dict[str, Any]:
    doc = yaml.safe_load(render_lambda(settings)["serverless.yml"])
    env: dict[str, Any] = doc["provider"]["environment"]
    return env


def test_default_renders_the_queue_form_on_the_work_queue(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    env = _env(make_settings({}))
    assert "AISERVICE_ORCHESTRATOR__QUEUE_URL" not in env
    assert env["AISERVICE_ORCHESTRATOR__QUEUE__BACKEND"] == "sqs"
    assert env["AISERVICE_ORCHESTRATOR__QUEUE__SQS__URL"] == {"Ref": "WorkQueue"}
    # As Lambda sees it once CloudFormation resolved the Ref: the SQS backend on that URL.
    deployed = {k: v for k, v in env.items() if k.startswith("AISERVICE_ORCHESTRATOR__")}
    deployed["AISERVICE_ORCHESTRATOR__QUEUE__SQS__URL"] = QUEUE
    (tmp_path / "aiservice.yaml").write_text("{}\n")
    loaded = load_settings(
        tmp_path / "aiservice.yaml", environ=deployed, dotenv_file=None, cwd=tmp_path
    )
    queue = effective_queue(loaded.orchestrator)
    assert (queue.backend, queue.sqs.url) == ("sqs", QUEUE)


def test_a_configured_queue_is_kept(make_settings: MakeSettings) -> None:
    sqs = {"backend": "sqs", "sqs": {"url": QUEUE}}
    own = _env(make_settings({"orchestrator": {"queue": sqs}}))
    assert own["AISERVICE_ORCHESTRATOR__QUEUE__BACKEND"] == "sqs"
    assert "AISERVICE_ORCHESTRATOR__QUEUE__SQS__URL" not in own  # the file's URL wins
    legacy = _env(make_settings({"orchestrator": {"queue_url": QUEUE}}))
    assert "AISERVICE_ORCHESTRATOR__QUEUE__SQS__URL" not in legacy
    streams = _env(make_settings({"orchestrator": {"queue": {"backend": "redis-streams"}}}))
    assert not any(k.startswith("AISERVICE_ORCHESTRATOR__QUEUE") for k in streams)

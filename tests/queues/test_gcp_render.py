"""``aiservice render`` for Cloud Run / Cloud Functions with the Cloud Tasks queue."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from aiservice.config import load_settings
from aiservice.deploy.gcp import render_cloudrun, render_function

from ..conftest import MakeSettings

FLOWS = {"f": {"steps": {"s": {"url": "https://ml.example.com/x"}}}}
ACCOUNT = "aiservice@acme.iam.gserviceaccount.com"


def _config(**tasks: Any) -> dict[str, Any]:
    return {
        "flows": FLOWS,
        "orchestrator": {"queue": {"backend": "cloud-tasks", "cloud_tasks": tasks}},
        "deploy": {"gcp_project": "acme", "gcp_region": "europe-west1"},
    }


def _env(service_yaml: str) -> dict[str, str]:
    doc = yaml.safe_load(service_yaml)
    container = doc["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_cloudrun_renders_the_queue_script_and_env(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    files = render_cloudrun(make_settings(_config(target_url="https://svc.a.run.app")))
    script = files["gcp/tasks-queue.sh"]
    assert "gcloud tasks queues create aiservice-executions" in script
    assert "--location=europe-west1" in script and "--max-attempts=100" in script
    assert "--min-backoff=5s" in script and "--max-backoff=300s" in script
    assert f"--member=serviceAccount:{ACCOUNT} --role=roles/cloudtasks.enqueuer" in script
    assert "--role=roles/iam.serviceAccountUser" in script
    assert (
        "gcloud run services add-iam-policy-binding aiservice --region=europe-west1 "
        f"--project=acme --member=serviceAccount:{ACCOUNT} --role=roles/run.invoker"
    ) in script
    path = tmp_path / "tasks-queue.sh"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)

    env = _env(files["gcp/service.yaml"])
    prefix = "AISERVICE_ORCHESTRATOR__QUEUE__CLOUD_TASKS__"
    assert env[prefix + "PROJECT"] == "acme"
    assert env[prefix + "LOCATION"] == "europe-west1"
    assert env[prefix + "SERVICE_ACCOUNT"] == ACCOUNT
    # The rendered variables are read back as the settings the queue needs.
    (tmp_path / "aiservice.yaml").write_text(yaml.safe_dump(_config(target_url="https://s")))
    loaded = load_settings(tmp_path / "aiservice.yaml", environ=env, dotenv_file=None)
    tasks = loaded.orchestrator.queue.cloud_tasks
    assert (tasks.project, tasks.location, tasks.service_account) == (
        "acme",
        "europe-west1",
        ACCOUNT,
    )


def test_function_renders_the_invoker_binding_for_functions(make_settings: MakeSettings) -> None:
    files = render_function(make_settings(_config(project="other", location="us-east1")))
    script = files["gcp/tasks-queue.sh"]
    assert "--project=other" in script and "--location=us-east1" in script
    assert "gcloud functions add-invoker-policy-binding aiservice" in script
    assert "Set orchestrator.queue.cloud_tasks.target_url" in script
    env = yaml.safe_load(files["gcp/function.env.yaml"])
    assert "AISERVICE_ORCHESTRATOR__QUEUE__CLOUD_TASKS__PROJECT" not in env  # configured
    assert env["AISERVICE_ORCHESTRATOR__QUEUE__CLOUD_TASKS__SERVICE_ACCOUNT"] == ACCOUNT


def test_secret_auth_needs_no_token_bindings(make_settings: MakeSettings) -> None:
    config = _config(auth="secret", secret="secret://env/TASK_SECRET", target_url="https://s")
    script = render_cloudrun(make_settings(config))["gcp/tasks-queue.sh"]
    assert "serviceAccountUser" not in script and "run.invoker" not in script


def test_no_queue_script_without_cloud_tasks(make_settings: MakeSettings) -> None:
    assert "gcp/tasks-queue.sh" not in render_cloudrun(make_settings({"flows": FLOWS}))
    assert "gcp/tasks-queue.sh" not in render_function(make_settings({"flows": FLOWS}))

"""Cloud Tasks for async executions (``orchestrator.queue.backend: cloud-tasks``) in the
Cloud Run and Cloud Functions renders.

``gcp/tasks-queue.sh`` creates the queue with the configured retry policy, lets the
runtime account enqueue tasks and sign OIDC tokens as the task account, and binds that
account as an invoker of the service. :func:`tasks_env` puts the queue's project, location
and account in the environment when the configuration leaves them unset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .common import header, slug

if TYPE_CHECKING:
    from ..config import Settings
    from ..config.queues import CloudTasksQueueSettings

__all__ = ["service_account", "tasks_env", "tasks_script"]


def service_account(settings: Settings) -> str:
    """The runtime service account the Cloud Run / Functions deploy uses."""
    return f"{slug(settings)}@{settings.deploy.gcp_project}.iam.gserviceaccount.com"


def _tasks(settings: Settings) -> CloudTasksQueueSettings | None:
    from ..config.queues import effective_queue

    queue = effective_queue(settings.orchestrator)
    return queue.cloud_tasks if queue.backend == "cloud-tasks" else None


def tasks_env(settings: Settings) -> dict[str, str]:
    """The Cloud Tasks settings the deploy knows and the configuration left unset."""
    cfg = _tasks(settings)
    if cfg is None:
        return {}
    prefix = "AISERVICE_ORCHESTRATOR__QUEUE__CLOUD_TASKS__"
    env = {}
    if cfg.project is None:
        env[prefix + "PROJECT"] = settings.deploy.gcp_project
    if "location" not in cfg.model_fields_set:
        env[prefix + "LOCATION"] = settings.deploy.gcp_region
    if cfg.auth == "oidc" and cfg.service_account is None:
        env[prefix + "SERVICE_ACCOUNT"] = service_account(settings)
    return env


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def tasks_script(settings: Settings, target: str, invoker: str) -> str | None:
    """``gcp/tasks-queue.sh``: the queue, its retry policy and the IAM it needs (or None)."""
    cfg = _tasks(settings)
    if cfg is None:
        return None
    d, account = settings.deploy, service_account(settings)
    project, location = cfg.project or d.gcp_project, cfg.location
    if "location" not in cfg.model_fields_set:
        location = d.gcp_region
    signer = cfg.service_account or account
    create = [
        f"gcloud tasks queues create {cfg.queue}",
        f"--project={project}",
        f"--location={location}",
        f"--max-attempts={cfg.max_attempts}",
        f"--min-backoff={_duration(cfg.min_backoff)}",
        f"--max-backoff={_duration(cfg.max_backoff)}",
    ]
    lines = [
        "#!/usr/bin/env bash",
        header(target, _tasks_note(settings, cfg)).rstrip("\n"),
        "set -euo pipefail",
        "# The queue async executions wait in; retries resume them (update: queues update).",
        " \\\n  ".join(create),
        "# The service enqueues tasks...",
        f"gcloud projects add-iam-policy-binding {project} "
        f"--member=serviceAccount:{account} --role=roles/cloudtasks.enqueuer",
    ]
    if cfg.auth == "oidc":
        lines += [
            "# ...whose OIDC tokens are minted for this account (the service must act as it)...",
            f"gcloud iam service-accounts add-iam-policy-binding {signer} --project={project} "
            f"--member=serviceAccount:{account} --role=roles/iam.serviceAccountUser",
            "# ...and that account may invoke the service (needed when it is private).",
            invoker.format(member=f"serviceAccount:{signer}"),
        ]
    return "\n".join(lines) + "\n"


def _tasks_note(settings: Settings, cfg: CloudTasksQueueSettings) -> list[str]:
    note = ["Run once per project (re-running a create fails harmlessly if it exists)."]
    if not cfg.target_url:
        note.append(
            "Set orchestrator.queue.cloud_tasks.target_url to the service URL "
            "(gcloud run services describe ... --format='value(status.url)')."
        )
    if cfg.dispatch_deadline > settings.deploy.timeout_seconds:
        note.append(
            f"dispatch_deadline {cfg.dispatch_deadline:g}s exceeds deploy.timeout_seconds "
            f"{settings.deploy.timeout_seconds}: the platform would cut the execution first."
        )
    return note

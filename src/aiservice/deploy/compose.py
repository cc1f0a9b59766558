"""``docker-compose.yml``: the app with Redis and Ollama (and a Qdrant server when the
vector stores use one, see :mod:`.qdrant`), for local runs and single hosts.

``secret://env/X`` references become ``X: ${X:?...}`` (from the shell or ``.env``); Redis
backs the cache when the configuration keeps the in-memory default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import qdrant
from .bindings import bindings, runtime_note
from .common import (
    HEALTH_LIVE,
    app_env,
    container_port,
    dump,
    grace_env,
    header,
    shutdown_seconds,
)

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["render_compose"]


def _app(settings: Settings) -> dict[str, Any]:
    port = container_port(settings)
    env: dict[str, str] = {"PORT": str(port), **grace_env(settings)}
    if settings.deploy.redis and settings.cache.backend == "memory":
        env["AISERVICE_CACHE__BACKEND"] = "redis"
        env["AISERVICE_CACHE__URL"] = "redis://redis:6379/0"
    if qdrant.serves_qdrant(settings):
        env["AISERVICE_VECTORS__URL"] = qdrant.app_url("qdrant")
    env.update(app_env(settings))
    for b in bindings(settings):
        if b.env_var:
            env[b.env_var] = f"${{{b.env_var}:?set {b.env_var} in the shell or .env}}"
    service: dict[str, Any] = {
        "build": {"context": ".", "target": "runtime"},
        "image": settings.deploy.image,
        "ports": [f"127.0.0.1:{port}:{port}"],
        "environment": env,
        "read_only": True,
        "tmpfs": ["/tmp"],
        "stop_grace_period": f"{shutdown_seconds(settings)}s",
        "healthcheck": {
            "test": [
                "CMD",
                "python",
                "-c",
                "import urllib.request; urllib.request.urlopen("
                f"'http://127.0.0.1:{port}{HEALTH_LIVE}', timeout=2)",
            ],
            "interval": "10s",
            "timeout": "3s",
            "retries": 3,
        },
    }
    depends = {}
    if settings.deploy.redis:
        depends["redis"] = {"condition": "service_healthy"}
    depends["ollama"] = {"condition": "service_started"}
    if qdrant.serves_qdrant(settings):
        depends["qdrant"] = {"condition": "service_started"}
    service["depends_on"] = depends
    return service


def _qdrant(settings: Settings) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": qdrant.QDRANT_IMAGE,
        "volumes": ["qdrant-data:/qdrant/storage"],
    }
    key = qdrant.api_key_env(settings)
    if key:
        need = f"set {key} in the shell or .env"
        service["environment"] = {"QDRANT__SERVICE__API_KEY": f"${{{key}:?{need}}}"}
    return service


def render_compose(settings: Settings) -> dict[str, str]:
    services: dict[str, Any] = {"app": _app(settings)}
    if settings.deploy.redis:
        services["redis"] = {
            "image": "redis:7-alpine",
            "command": ["redis-server", "--save", "", "--appendonly", "no"],
            "healthcheck": {
                "test": ["CMD", "redis-cli", "ping"],
                "interval": "5s",
                "timeout": "2s",
                "retries": 10,
            },
        }
    services["ollama"] = {
        "image": "ollama/ollama:latest",
        "volumes": ["ollama-models:/root/.ollama"],
    }
    volumes: dict[str, Any] = {"ollama-models": {}}
    if qdrant.serves_qdrant(settings):
        services["qdrant"] = _qdrant(settings)
        volumes["qdrant-data"] = {}
    doc = {"services": services, "volumes": volumes}
    note = ["Run: docker compose up --build", *runtime_note(bindings(settings))]
    return {"docker-compose.yml": dump(doc, head=header("compose", note))}

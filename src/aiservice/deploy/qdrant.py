"""The Qdrant server rendered beside the app (compose service, Kubernetes StatefulSet).

Rendered when the configuration uses a Qdrant *server* the deployment runs itself:
``vectors.backend: qdrant`` with a ``vectors.url`` whose host is a bare service name
(``http://qdrant:6333``) or a loopback address. A URL with a domain (Qdrant Cloud, a
managed cluster) renders nothing: that server exists already. The app is then pointed at
the rendered server's address (``AISERVICE_VECTORS__URL``), and a ``secret://env/X``
``vectors.api_key`` becomes the server's ``QDRANT__SERVICE__API_KEY`` as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..config import SECRET_PREFIX

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["QDRANT_IMAGE", "QDRANT_UID", "api_key_env", "app_url", "serves_qdrant"]

QDRANT_IMAGE = "qdrant/qdrant:v1.13.6-unprivileged"
QDRANT_UID = 1000  # the user of the unprivileged image
HTTP_PORT = 6333
GRPC_PORT = 6334
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def serves_qdrant(settings: Settings) -> bool:
    cfg = settings.vectors
    if cfg.backend != "qdrant" or not cfg.url:
        return False
    host = urlsplit(cfg.url).hostname or ""
    return host in _LOOPBACK or "." not in host


def api_key_env(settings: Settings) -> str | None:
    """The environment variable of a ``secret://env/X`` Qdrant API key, or ``None``."""
    key = settings.vectors.api_key or ""
    prefix = f"{SECRET_PREFIX}env/"
    return key[len(prefix) :] if key.startswith(prefix) else None


def app_url(host: str) -> str:
    """The REST URL (qdrant-client finds gRPC on 6334 itself with ``prefer_grpc``)."""
    return f"http://{host}:{HTTP_PORT}"

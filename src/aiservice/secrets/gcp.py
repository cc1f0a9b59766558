"""``secret://gcp-sm/...``: GCP Secret Manager through google-cloud-secret-manager.

Accepted names:

* ``projects/P/secrets/S/versions/V`` — fully qualified;
* ``projects/P/secrets/S`` — version ``latest``;
* ``S`` or ``S/versions/V`` — project from ``secrets.gcp_project``, else the environment's
  ``GOOGLE_CLOUD_PROJECT`` (or ``GCLOUD_PROJECT`` / ``GCP_PROJECT``).

The Google library is imported and the client built on the first fetch. The client uses
the REST transport: no gRPC channel threads (safe in forked workers) and the same code
path as the tests. ``secrets.gcp_endpoint`` overrides the API endpoint; a plain
``http://`` endpoint (an emulator, a test server) is called with anonymous credentials, so
real tokens never travel unencrypted. Otherwise credentials are Application Default
Credentials.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from .base import SecretError

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["SecretManagerSource", "version_name"]

_PROJECT_VARIABLES = ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "GCP_PROJECT")
# Bounded so a dead endpoint fails a startup in seconds, not after the 60 s default.
_TIMEOUT = 10.0
_RETRY_DEADLINE = 15.0

_FULL = re.compile(r"^projects/(?P<p>[^/]+)/secrets/(?P<s>[^/]+)(?:/versions/(?P<v>[^/]+))?$")
_SHORT = re.compile(r"^(?P<s>[^/]+)(?:/versions/(?P<v>[^/]+))?$")


def version_name(name: str, project: str | None) -> str:
    """The fully qualified ``projects/P/secrets/S/versions/V`` for a reference name."""
    full = _FULL.match(name)
    if full is not None:
        return f"projects/{full['p']}/secrets/{full['s']}/versions/{full['v'] or 'latest'}"
    short = _SHORT.match(name)
    if short is None:
        raise SecretError(
            f"malformed Secret Manager name {name!r}: use projects/P/secrets/S/versions/V or S"
        )
    if not project:
        raise SecretError(
            "no GCP project for a short Secret Manager name: set secrets.gcp_project or "
            "GOOGLE_CLOUD_PROJECT, or use projects/P/secrets/S"
        )
    return f"projects/{project}/secrets/{short['s']}/versions/{short['v'] or 'latest'}"


class SecretManagerSource:
    def __init__(self, settings: Settings) -> None:
        env = settings.environ
        self._project = settings.secrets.gcp_project or next(
            (env[v] for v in _PROJECT_VARIABLES if env.get(v)), None
        )
        self._endpoint = settings.secrets.gcp_endpoint
        self._lock = threading.Lock()
        self._client: Any = None

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    def _build_client(self) -> Any:
        from google.cloud import secretmanager

        kwargs: dict[str, Any] = {"transport": "rest"}
        if self._endpoint:
            kwargs["client_options"] = {"api_endpoint": self._endpoint}
            if self._endpoint.startswith("http://"):
                from google.auth.credentials import AnonymousCredentials

                kwargs["credentials"] = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return secretmanager.SecretManagerServiceClient(**kwargs)

    def fetch(self, name: str) -> str:
        from google.api_core import exceptions, retry
        from google.auth.exceptions import GoogleAuthError

        full_name = version_name(name, self._project)
        policy = retry.Retry(
            predicate=retry.if_exception_type(
                exceptions.ServiceUnavailable, exceptions.ResourceExhausted
            ),
            initial=0.5,
            maximum=4.0,
            timeout=_RETRY_DEADLINE,
        )
        try:
            response = self.client().access_secret_version(
                name=full_name, timeout=_TIMEOUT, retry=policy
            )
        except exceptions.GoogleAPICallError as exc:
            code = f" ({exc.code})" if exc.code else ""
            raise SecretError(f"{type(exc).__name__}{code}: {exc.message}") from exc
        except GoogleAuthError as exc:
            raise SecretError(f"Google credentials: {exc}") from exc
        data: bytes = response.payload.data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(f"{full_name} is not UTF-8 text") from None

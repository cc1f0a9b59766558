"""Where Gemini requests go and how they authenticate: Google AI (API key) or Vertex AI
(OAuth bearer token from google-auth).

Each target builds URLs and has an ``auth``, a
:class:`~aiservice.transport.auth.HeaderAuth` the upstream client asks once per request:
:func:`google_api_key` (``x-goog-api-key``) or :class:`VertexCredentials` (an OAuth bearer
token). The provider picks a target from the configuration (``vertex`` set → Vertex AI)
and otherwise does not care which it talks to.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError
from .base import ProviderError
from .http import KeyHeaders

if TYPE_CHECKING:
    from ..config import ProviderSettings, VertexSettings
    from ..secrets.base import SecretResolver
    from ..transport.auth import HeaderAuth, Outgoing

__all__ = [
    "GoogleAITarget",
    "Target",
    "VertexCredentials",
    "VertexTarget",
    "build_target",
    "google_api_key",
]

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class Target(Protocol):
    """URLs and credentials for one Gemini endpoint family."""

    base_url: str
    vertex: bool
    auth: HeaderAuth

    def model_url(self, model: str, method: str) -> str: ...

    def models_url(self) -> str: ...

    def models_headers(self) -> dict[str, str]: ...


def google_api_key(secrets: SecretResolver, reference: str) -> KeyHeaders:
    """Google AI's auth: the key in ``x-goog-api-key``."""
    return KeyHeaders(secrets, reference, lambda key: {"x-goog-api-key": key})


def _model_id(model: str) -> str:
    return model.rsplit("/", 1)[-1]  # accept "models/x" and "publishers/google/models/x"


class GoogleAITarget:
    """``generativelanguage.googleapis.com`` with the key in ``x-goog-api-key``.

    The key travels in a header, never in the ``?key=`` query string, so URLs (which
    proxies and access logs record) never carry it.
    """

    vertex = False

    def __init__(self, name: str, config: ProviderSettings, secrets: SecretResolver) -> None:
        if not config.api_key:
            raise ConfigError(
                "the gemini provider needs an api_key (or vertex: {project, location})",
                key=f"providers.{name}",
            )
        self.auth: HeaderAuth = google_api_key(secrets, config.api_key)
        self._version = config.api_version or "v1beta"
        self.base_url = (config.base_url or "https://generativelanguage.googleapis.com").rstrip("/")

    def model_url(self, model: str, method: str) -> str:
        return f"/{self._version}/models/{_model_id(model)}:{method}"

    def models_url(self) -> str:
        return f"/{self._version}/models"

    def models_headers(self) -> dict[str, str]:
        return {}


class VertexCredentials:
    """Bearer tokens from google-auth credentials, refreshed off the event loop; a
    :class:`~aiservice.transport.auth.HeaderAuth` sending ``Authorization: Bearer``.

    ``credentials=None`` uses application default credentials (``google.auth.default``
    with the cloud-platform scope: the service account of Cloud Run / Functions / GKE, or
    ``GOOGLE_APPLICATION_CREDENTIALS``), looked up on first use. A token is refreshed when
    google-auth says it is no longer valid (expired or about to expire); the refresh is a
    blocking HTTP call, so it runs in a worker thread, one at a time.
    """

    def __init__(self, provider: str, credentials: Any = None) -> None:
        self._provider = provider
        self._credentials = credentials
        self._lock = asyncio.Lock()

    async def headers(self, request: Outgoing | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token()}"}

    async def token(self) -> str:
        credentials = self._credentials
        if credentials is not None and credentials.valid:
            return str(credentials.token)
        async with self._lock:
            try:
                return await asyncio.to_thread(self._refresh)
            except ProviderError:
                raise
            except Exception as exc:  # google.auth.exceptions.* and transport errors
                raise ProviderError(
                    f"{self._provider}: cannot get a Google access token ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})",
                    kind="auth",
                    provider=self._provider,
                ) from exc

    def _refresh(self) -> str:
        import google.auth
        import google.auth.transport.requests

        if self._credentials is None:
            self._credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        credentials = self._credentials
        if not credentials.valid:
            credentials.refresh(google.auth.transport.requests.Request())
        if not credentials.token:
            raise ProviderError(
                f"{self._provider}: Google credentials returned no access token",
                kind="auth",
                provider=self._provider,
            )
        return str(credentials.token)


class VertexTarget:
    """``{location}-aiplatform.googleapis.com/v1/projects/{p}/locations/{l}/publishers/google``."""

    vertex = True

    def __init__(self, name: str, vertex: VertexSettings, config: ProviderSettings, creds: Any):
        self._project = vertex.project
        self._location = vertex.location
        self._version = config.api_version or "v1"
        host = (
            "aiplatform.googleapis.com"  # the global endpoint has no region prefix
            if vertex.location == "global"
            else f"{vertex.location}-aiplatform.googleapis.com"
        )
        self.base_url = (config.base_url or f"https://{host}").rstrip("/")
        self.credentials = VertexCredentials(name, creds)
        self.auth: HeaderAuth = self.credentials

    def model_url(self, model: str, method: str) -> str:
        return (
            f"/{self._version}/projects/{self._project}/locations/{self._location}"
            f"/publishers/google/models/{_model_id(model)}:{method}"
        )

    def models_url(self) -> str:
        return "/v1beta1/publishers/google/models"  # Model Garden listing (v1beta1 only)

    def models_headers(self) -> dict[str, str]:
        return {"x-goog-user-project": self._project}


def build_target(
    name: str, config: ProviderSettings, secrets: SecretResolver, credentials: Any = None
) -> Target:
    if config.vertex is not None:
        return VertexTarget(name, config.vertex, config, credentials)
    return GoogleAITarget(name, config, secrets)

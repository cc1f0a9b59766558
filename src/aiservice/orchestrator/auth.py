"""Step authentication: ``none``, ``bearer``, ``google_id_token`` and ``aws_sigv4``.

Each scheme is a class with an ``Options`` model (validated at flow load time) and
``async headers(options, request) -> Mapping[str, str]``: the headers to add to one
:class:`~aiservice.transport.auth.Outgoing` request. :meth:`StepAuthenticator.bind` turns a
step's scheme and options into a :class:`~aiservice.transport.auth.HeaderAuth`, the same
protocol provider keys and webhook signatures use; the transport asks it on every attempt
with the final request, so signatures cover the exact bytes sent (SigV4 is re-signed on
each retry). Schemes are registered by dotted path; google-auth and botocore are imported
only when a flow uses them. Third parties add schemes through the ``aiservice.step_auth``
entry-point group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from ..registry import Registry
from ..transport.auth import NO_AUTH, HeaderAuth, Outgoing

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = ["SCHEMES", "AuthScheme", "StepAuthenticator", "validate_auth"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuthScheme(Protocol):
    Options: ClassVar[type[BaseModel]]

    async def headers(self, options: Any, request: Outgoing) -> Mapping[str, str]: ...


SchemeFactory = Any  # a class: (settings, secrets) -> AuthScheme, with an ``Options`` model

SCHEMES: Registry[SchemeFactory] = Registry("step auth type", group="aiservice.step_auth")
SCHEMES.register("none", "aiservice.orchestrator.auth:NoAuth")
SCHEMES.register("bearer", "aiservice.orchestrator.auth:BearerAuth")
SCHEMES.register(
    "google_id_token",
    "aiservice.orchestrator.auth:GoogleIdTokenAuth",
    "pip install 'aiservice[gcp]'",
)
SCHEMES.register(
    "aws_sigv4", "aiservice.orchestrator.auth:SigV4Auth", "pip install 'aiservice[aws]'"
)


def validate_auth(type_: str, options: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems as ``(field suffix, message)``; empty when the auth block is valid."""
    if type_ not in SCHEMES:
        return [(".type", f"unknown auth type {type_!r} (known: {', '.join(SCHEMES.names())})")]
    try:
        SCHEMES.get(type_).Options.model_validate(options)
    except ValidationError as exc:
        return [("." + ".".join(str(p) for p in e["loc"]), _message(e)) for e in exc.errors()]
    return []


def _message(error: Any) -> str:
    return "unknown key" if error["type"] == "extra_forbidden" else str(error["msg"])


class StepAuthenticator:
    """One per orchestrator: builds each scheme once so token caches are shared."""

    def __init__(self, settings: Settings, secrets: SecretResolver) -> None:
        self._settings = settings
        self._secrets = secrets
        self._schemes: dict[str, AuthScheme] = {}
        self._options: dict[tuple[str, str], Any] = {}

    def bind(self, type_: str, options: dict[str, Any]) -> HeaderAuth:
        """The step's auth as a :class:`HeaderAuth`. Raises if the scheme cannot be loaded
        (e.g. its extra is not installed) or the options do not validate."""
        if type_ == "none":
            return NO_AUTH
        scheme = self._schemes.get(type_)
        if scheme is None:
            scheme = self._schemes[type_] = SCHEMES.get(type_)(self._settings, self._secrets)
        key = (type_, repr(sorted(options.items())))
        parsed = self._options.get(key)
        if parsed is None:
            parsed = self._options[key] = scheme.Options.model_validate(options)
        return _Bound(scheme, parsed)


class _Bound:
    __slots__ = ("_options", "_scheme")

    def __init__(self, scheme: AuthScheme, options: Any) -> None:
        self._scheme, self._options = scheme, options

    async def headers(self, request: Outgoing) -> Mapping[str, str]:
        return await self._scheme.headers(self._options, request)


class NoAuth:
    Options: ClassVar[type[BaseModel]] = _Options

    def __init__(self, settings: Settings, secrets: SecretResolver) -> None:
        pass

    async def headers(self, options: Any, request: Outgoing) -> Mapping[str, str]:
        return {}


class BearerOptions(_Options):
    token: str
    """A ``secret://`` reference (or, discouraged, a literal)."""
    header: str = "Authorization"
    scheme: str = "Bearer"


class BearerAuth:
    Options: ClassVar[type[BaseModel]] = BearerOptions

    def __init__(self, settings: Settings, secrets: SecretResolver) -> None:
        self._secrets = secrets

    async def headers(self, options: BearerOptions, request: Outgoing) -> Mapping[str, str]:
        token = await self._secrets.resolve(options.token)
        return {options.header: f"{options.scheme} {token}".strip()}


class GoogleOptions(_Options):
    audience: str | None = None
    """Defaults to the target URL without its query string."""
    credentials_file: str | None = None
    """Service-account key; defaults to ``GOOGLE_APPLICATION_CREDENTIALS``, then the
    metadata server (Cloud Run, Cloud Functions, GKE)."""


class GoogleIdTokenAuth:
    """Google-signed OIDC ID tokens, cached per audience until google-auth says expired."""

    Options: ClassVar[type[BaseModel]] = GoogleOptions

    def __init__(self, settings: Settings, secrets: SecretResolver) -> None:
        self._default_file = settings.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        self._credentials: dict[tuple[str, str | None], Any] = {}
        self._locks: dict[tuple[str, str | None], asyncio.Lock] = {}

    async def headers(self, options: GoogleOptions, request: Outgoing) -> Mapping[str, str]:
        audience = options.audience or str(request.url.with_query(None).with_fragment(None))
        key = (audience, options.credentials_file or self._default_file)
        creds: Any = self._credentials.get(key)
        if creds is None or not creds.valid:
            async with self._locks.setdefault(key, asyncio.Lock()):
                creds = self._credentials.get(key)
                if creds is None or not creds.valid:
                    # Token refresh is blocking HTTP (google-auth uses requests).
                    creds = await asyncio.to_thread(self._fresh, audience, key[1], creds)
                    self._credentials[key] = creds
        return {"Authorization": f"Bearer {creds.token}"}

    @staticmethod
    def _fresh(audience: str, path: str | None, creds: Any) -> Any:
        from google.auth.transport.requests import Request

        transport = Request()
        if creds is None and path:
            from google.oauth2 import service_account

            creds = service_account.IDTokenCredentials.from_service_account_file(  # type: ignore[no-untyped-call]
                path, target_audience=audience
            )
        elif creds is None:
            from google.auth import compute_engine

            creds = compute_engine.IDTokenCredentials(  # type: ignore[no-untyped-call]
                transport, target_audience=audience, use_metadata_identity_endpoint=True
            )
        creds.refresh(transport)
        return creds


class SigV4Options(_Options):
    service: str = "lambda"
    """``lambda`` for Function URLs, ``execute-api`` for API Gateway."""
    region: str | None = None
    """Defaults to ``AWS_REGION`` / ``AWS_DEFAULT_REGION``."""
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    """Explicit credentials (``secret://`` references); default: the botocore chain."""


class SigV4Auth:
    """AWS Signature V4 over the exact method, URL, signed headers and body bytes."""

    Options: ClassVar[type[BaseModel]] = SigV4Options

    def __init__(self, settings: Settings, secrets: SecretResolver) -> None:
        self._secrets = secrets
        env = settings.environ
        self._region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        self._chain: Any = None

    async def _credentials(self, options: SigV4Options) -> Any:
        from botocore.credentials import Credentials

        if options.access_key_id and options.secret_access_key:
            token = options.session_token
            return Credentials(
                await self._secrets.resolve(options.access_key_id),
                await self._secrets.resolve(options.secret_access_key),
                await self._secrets.resolve(token) if token else None,
            )
        if self._chain is None:
            import botocore.session

            # The default chain may call the instance metadata service: not on the loop.
            self._chain = await asyncio.to_thread(botocore.session.get_session().get_credentials)
        if self._chain is None:
            raise RuntimeError("no AWS credentials found for aws_sigv4 step auth")
        return await asyncio.to_thread(self._chain.get_frozen_credentials)

    async def headers(self, options: SigV4Options, request: Outgoing) -> Mapping[str, str]:
        from botocore.auth import SigV4Auth as BotoSigV4
        from botocore.awsrequest import AWSRequest

        region = options.region or self._region
        if not region:
            raise RuntimeError("aws_sigv4 step auth needs 'region' (or AWS_REGION)")
        credentials = await self._credentials(options)
        content_type = request.header("content-type")
        aws_request = AWSRequest(
            method=request.method,
            url=str(request.url),
            data=request.body or b"",
            headers={"content-type": content_type} if content_type else {},
        )
        BotoSigV4(credentials, options.service, region).add_auth(aws_request)
        names = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")
        return {n: v for n in names if (v := aws_request.headers.get(n)) is not None}

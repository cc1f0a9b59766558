"""AWS sources: Secrets Manager (``secret://aws-sm/...``) and SSM Parameter Store (``aws-ssm``).

* ``secret://aws-sm/NAME`` — the SecretString of ``NAME`` (a name or an ARN);
  ``#key`` selects one key of a JSON secret; ``?stage=AWSPREVIOUS`` reads another version
  stage (``#`` and ``?`` may come in either order).
* ``secret://aws-ssm/PATH`` — a parameter, SecureString decrypted. Hierarchical names get
  their leading slash back: ``secret://aws-ssm/prod/db/password`` reads
  ``/prod/db/password``.

boto3 is imported and the client built on the first fetch, so a configuration without AWS
references never pays for either. Region: ``secrets.aws_region``, else ``AWS_REGION`` /
``AWS_DEFAULT_REGION``, else boto3's own configuration; ``secrets.endpoint_url`` points the
clients at LocalStack or moto. Credentials come from boto3's usual chain (role, env, profile).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .base import SecretError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_ssm.client import SSMClient

    from ..config import Settings

__all__ = ["ParameterStoreSource", "SecretsManagerSource", "SmName", "parse_sm_name"]

# A secret fetch runs at startup and on refresh: a dead endpoint must fail in seconds,
# not after botocore's 60 s defaults.
_CONNECT_TIMEOUT = 5.0
_READ_TIMEOUT = 10.0
_MAX_ATTEMPTS = 3

_SM_NAME = re.compile(r"^(?P<id>[^#?]+)(?P<a>[#?][^#?]*)?(?P<b>[#?][^#?]*)?$")
_SM_QUERY_KEYS = {"stage"}


@dataclass(frozen=True, slots=True)
class SmName:
    secret_id: str
    json_key: str | None = None
    stage: str | None = None


def parse_sm_name(name: str) -> SmName:
    """Split ``NAME[#json_key][?stage=STAGE]`` (either order) into its parts."""
    match = _SM_NAME.match(name)
    if match is None:
        raise SecretError(f"malformed Secrets Manager name {name!r}: use NAME[#key][?stage=S]")
    parts = [p for p in (match["a"], match["b"]) if p]
    fragments = [p[1:] for p in parts if p.startswith("#")]
    queries = [p[1:] for p in parts if p.startswith("?")]
    if len(fragments) > 1 or len(queries) > 1:
        raise SecretError(f"malformed Secrets Manager name {name!r}: one #key and one ?stage")
    stage = _parse_stage(queries[0]) if queries else None
    json_key = fragments[0] if fragments else None
    if json_key == "":
        raise SecretError(f"empty JSON key in {name!r}")
    return SmName(match["id"], json_key, stage)


def _parse_stage(query: str) -> str | None:
    params = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(params) - _SM_QUERY_KEYS)
    if unknown:
        raise SecretError(f"unknown Secrets Manager option(s) {', '.join(unknown)} (known: stage)")
    values = params.get("stage", [])
    if len(values) != 1 or not values[0]:
        raise SecretError("?stage= needs exactly one version stage, e.g. ?stage=AWSPREVIOUS")
    return values[0]


def select_json_key(document: str, key: str) -> str:
    """One key of a JSON object secret; non-string values come back as JSON text."""
    try:
        data = json.loads(document)
    except ValueError:
        raise SecretError(f"cannot select key {key!r}: the secret is not JSON") from None
    if not isinstance(data, dict):
        raise SecretError(f"cannot select key {key!r}: the secret is not a JSON object")
    if key not in data:
        raise SecretError(f"the JSON secret has no key {key!r}")
    value = data[key]
    return value if isinstance(value, str) else json.dumps(value)


def _client_options(settings: Settings) -> dict[str, Any]:
    from botocore.config import Config

    env = settings.environ
    region = settings.secrets.aws_region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    return {
        "region_name": region,
        "endpoint_url": settings.secrets.endpoint_url,
        "config": Config(
            connect_timeout=_CONNECT_TIMEOUT,
            read_timeout=_READ_TIMEOUT,
            retries={"max_attempts": _MAX_ATTEMPTS, "mode": "standard"},
        ),
    }


def _describe(exc: Exception) -> SecretError | None:
    """A readable reason for botocore's errors (``None``: let the resolver describe it)."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "ClientError")
        return SecretError(f"{code}: {error.get('Message', '')}".rstrip(": "))
    if isinstance(exc, NoRegionError):
        return SecretError("no AWS region: set secrets.aws_region or AWS_REGION")
    if isinstance(exc, NoCredentialsError):
        return SecretError("no AWS credentials found (role, environment or profile)")
    return None


class _LazyClient:
    """Builds one boto3 client on first use; boto3 clients are thread-safe after that."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except SecretError:
            raise
        except Exception as exc:
            described = _describe(exc)
            if described is None:
                raise
            raise described from exc


class SecretsManagerSource(_LazyClient):
    """``secret://aws-sm/NAME[#json_key][?stage=STAGE]``."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._client: SecretsManagerClient | None = None

    def client(self) -> SecretsManagerClient:
        with self._lock:
            if self._client is None:
                import boto3

                options = _client_options(self._settings)
                self._client = boto3.session.Session().client("secretsmanager", **options)
            return self._client

    def fetch(self, name: str) -> str:
        ref = parse_sm_name(name)
        value: str = self._call(self._get_string, ref)
        return select_json_key(value, ref.json_key) if ref.json_key else value

    def _get_string(self, ref: SmName) -> str:
        client = self.client()
        if ref.stage:
            response = client.get_secret_value(SecretId=ref.secret_id, VersionStage=ref.stage)
        else:
            response = client.get_secret_value(SecretId=ref.secret_id)
        if "SecretString" not in response:
            raise SecretError("the secret has no SecretString (binary secrets are not supported)")
        return response["SecretString"]


class ParameterStoreSource(_LazyClient):
    """``secret://aws-ssm/PATH``: a parameter, SecureString decrypted."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._client: SSMClient | None = None

    def client(self) -> SSMClient:
        with self._lock:
            if self._client is None:
                import boto3

                options = _client_options(self._settings)
                self._client = boto3.session.Session().client("ssm", **options)
            return self._client

    def fetch(self, name: str) -> str:
        # SSM requires a leading slash on hierarchical names; the reference's own slash
        # (secret://aws-ssm/prod/x) is easy to forget, so both spellings work.
        path = name if "/" not in name or name.startswith("/") else "/" + name
        value: str = self._call(self._get_parameter, path)
        return value

    def _get_parameter(self, path: str) -> str:
        response = self.client().get_parameter(Name=path, WithDecryption=True)
        return response["Parameter"].get("Value", "")

"""AWS Secrets Manager and SSM Parameter Store through the real boto3 against moto's server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from aiservice import Settings
from aiservice.secrets import SecretError, SecretResolver
from aiservice.secrets.aws import SmName, parse_sm_name

from .conftest import ManualClock, boto_client


@pytest.fixture
def settings(aws: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings({"secrets": {"aws_region": "us-east-1", "endpoint_url": aws}})


async def test_plain_secret_string_is_resolved(aws: str, settings: Settings) -> None:
    boto_client("secretsmanager", aws).create_secret(Name="openai-key", SecretString="sk-live-1")
    resolver = SecretResolver(settings)
    assert await resolver.resolve("secret://aws-sm/openai-key") == "sk-live-1"


async def test_json_key_selects_one_field_of_a_json_secret(aws: str, settings: Settings) -> None:
    document = {"username": "app", "password": "p4ss-word", "port": 5432}
    boto_client("secretsmanager", aws).create_secret(Name="db", SecretString=json.dumps(document))
    resolver = SecretResolver(settings)
    assert await resolver.resolve("secret://aws-sm/db#password") == "p4ss-word"
    assert await resolver.resolve("secret://aws-sm/db#username") == "app"
    # Non-string values come back as JSON text, not Python reprs.
    assert await resolver.resolve("secret://aws-sm/db#port") == "5432"


async def test_version_stage_reads_the_previous_value(aws: str, settings: Settings) -> None:
    client = boto_client("secretsmanager", aws)
    client.create_secret(Name="rotating", SecretString=json.dumps({"key": "old-value"}))
    client.put_secret_value(SecretId="rotating", SecretString=json.dumps({"key": "new-value"}))
    resolver = SecretResolver(settings)
    assert await resolver.resolve("secret://aws-sm/rotating#key") == "new-value"
    assert await resolver.resolve("secret://aws-sm/rotating#key?stage=AWSPREVIOUS") == "old-value"
    # '?' before '#' is accepted too.
    assert await resolver.resolve("secret://aws-sm/rotating?stage=AWSPREVIOUS#key") == "old-value"


async def test_missing_secret_names_the_reference_and_the_aws_error(settings: Settings) -> None:
    resolver = SecretResolver(settings)
    with pytest.raises(SecretError) as info:
        await resolver.resolve("secret://aws-sm/does-not-exist")
    message = str(info.value)
    assert "secret://aws-sm/does-not-exist" in message
    assert "ResourceNotFoundException" in message


async def test_missing_json_key_and_non_json_secret_are_clear_errors(
    aws: str, settings: Settings
) -> None:
    client = boto_client("secretsmanager", aws)
    client.create_secret(Name="doc", SecretString=json.dumps({"a": "alpha-value"}))
    client.create_secret(Name="plain", SecretString="not-json-value")
    resolver = SecretResolver(settings)
    with pytest.raises(SecretError, match=r"secret://aws-sm/doc#b: the JSON secret has no key 'b'"):
        await resolver.resolve("secret://aws-sm/doc#b")
    with pytest.raises(SecretError, match="is not JSON") as info:
        await resolver.resolve("secret://aws-sm/plain#a")
    assert "not-json-value" not in str(info.value)


async def test_unknown_query_option_is_rejected(settings: Settings) -> None:
    resolver = SecretResolver(settings)
    with pytest.raises(SecretError, match="unknown Secrets Manager option"):
        await resolver.resolve("secret://aws-sm/x?version=3")


ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("n", SmName("n")),
        ("n#k", SmName("n", "k")),
        ("n?stage=AWSPENDING", SmName("n", None, "AWSPENDING")),
        ("n#k?stage=S", SmName("n", "k", "S")),
        ("n?stage=S#k", SmName("n", "k", "S")),
        (f"{ARN}#k", SmName(ARN, "k")),
    ],
)
def test_secrets_manager_names_parse_in_either_order(name: str, expected: SmName) -> None:
    assert parse_sm_name(name) == expected


@pytest.mark.parametrize("name", ["n#a#b", "n?stage=a?stage=b", "n#", "n?stage=", "#k"])
def test_malformed_secrets_manager_names_are_rejected(name: str) -> None:
    with pytest.raises(SecretError):
        parse_sm_name(name)


async def test_ssm_securestring_is_decrypted(aws: str, settings: Settings) -> None:
    boto_client("ssm", aws).put_parameter(
        Name="/prod/db/password", Value="ssm-s3cret", Type="SecureString"
    )
    resolver = SecretResolver(settings)
    # moto returns "kms:<key>:<value>" unless WithDecryption is sent: this pins that it is.
    assert await resolver.resolve("secret://aws-ssm//prod/db/password") == "ssm-s3cret"
    # The leading slash of a hierarchical name may be left out.
    assert await resolver.resolve("secret://aws-ssm/prod/db/password") == "ssm-s3cret"


async def test_ssm_flat_name_and_missing_parameter(aws: str, settings: Settings) -> None:
    boto_client("ssm", aws).put_parameter(Name="flat", Value="flat-value", Type="String")
    resolver = SecretResolver(settings)
    assert await resolver.resolve("secret://aws-ssm/flat") == "flat-value"
    with pytest.raises(SecretError, match=r"secret://aws-ssm/nope/x.*ParameterNotFound"):
        await resolver.resolve("secret://aws-ssm/nope/x")


async def test_rotated_secret_is_picked_up_after_the_ttl(
    aws: str, settings: Settings, clock: ManualClock
) -> None:
    client = boto_client("secretsmanager", aws)
    client.create_secret(Name="api-key", SecretString="key-generation-1")
    resolver = SecretResolver(settings, ttl=300, clock=clock)
    ref = "secret://aws-sm/api-key"
    assert await resolver.resolve(ref) == "key-generation-1"

    client.put_secret_value(SecretId="api-key", SecretString="key-generation-2")
    clock.advance(299)
    assert await resolver.resolve(ref) == "key-generation-1"
    clock.advance(2)
    assert await resolver.resolve(ref) == "key-generation-2"


async def test_region_comes_from_the_environment_snapshot_when_not_configured(
    aws: str, make_settings: Callable[..., Settings]
) -> None:
    boto_client("ssm", aws).put_parameter(Name="r", Value="regional", Type="String")
    settings = make_settings({"secrets": {"endpoint_url": aws}}, {"AWS_REGION": "us-east-1"})
    resolver = SecretResolver(settings)
    assert await resolver.resolve("secret://aws-ssm/r") == "regional"
    source: Any = resolver.source("aws-ssm")
    assert source.client().meta.region_name == "us-east-1"


async def test_no_region_anywhere_is_a_clear_error(
    aws: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings({"secrets": {"endpoint_url": aws}})
    with pytest.raises(SecretError, match="no AWS region: set secrets.aws_region or AWS_REGION"):
        await SecretResolver(settings).resolve("secret://aws-sm/anything")

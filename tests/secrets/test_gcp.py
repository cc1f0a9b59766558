"""GCP Secret Manager through the real google-cloud-secret-manager client (REST transport).

The client talks to a local HTTP server implementing ``...versions/{v}:access``, so
request building, response decoding and the library's error mapping all run for real.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aiservice import Settings
from aiservice.secrets import SecretError, SecretResolver
from aiservice.secrets.gcp import version_name
from tests.conftest import JsonLogCapture

from .conftest import FakeSecretManager, ManualClock

Gcp = tuple[FakeSecretManager, str]


@pytest.fixture
def settings(gcp: Gcp, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings({"secrets": {"gcp_endpoint": gcp[1], "gcp_project": "proj-a"}})


async def test_fully_qualified_version_is_accessed(gcp: Gcp, settings: Settings) -> None:
    fake, _ = gcp
    fake.values["projects/proj-b/secrets/db-pass/versions/3"] = "gcp-s3cret"
    resolver = SecretResolver(settings)
    ref = "secret://gcp-sm/projects/proj-b/secrets/db-pass/versions/3"
    assert await resolver.resolve(ref) == "gcp-s3cret"
    [request] = fake.requests
    assert request["name"] == "projects/proj-b/secrets/db-pass/versions/3"
    # A plain-http endpoint gets anonymous credentials: no token sent in clear text.
    assert "authorization" not in request["headers"]


async def test_short_name_uses_configured_project_and_latest(gcp: Gcp, settings: Settings) -> None:
    fake, _ = gcp
    fake.values["projects/proj-a/secrets/openai/versions/latest"] = "sk-gcp"
    assert await SecretResolver(settings).resolve("secret://gcp-sm/openai") == "sk-gcp"


async def test_short_name_falls_back_to_google_cloud_project_variable(
    gcp: Gcp, make_settings: Callable[..., Settings]
) -> None:
    fake, url = gcp
    fake.values["projects/env-proj/secrets/token/versions/latest"] = "from-env-project"
    settings = make_settings(
        {"secrets": {"gcp_endpoint": url}}, {"GOOGLE_CLOUD_PROJECT": "env-proj"}
    )
    assert await SecretResolver(settings).resolve("secret://gcp-sm/token") == "from-env-project"


async def test_multiline_payload_is_returned_unchanged(gcp: Gcp, settings: Settings) -> None:
    fake, _ = gcp
    pem = "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"
    fake.values["projects/proj-a/secrets/pem/versions/latest"] = pem
    # Unlike mounted files, API payloads are exact: no newline is stripped.
    assert await SecretResolver(settings).resolve("secret://gcp-sm/pem") == pem


async def test_not_found_names_the_reference_and_status(settings: Settings) -> None:
    with pytest.raises(SecretError) as info:
        await SecretResolver(settings).resolve("secret://gcp-sm/missing")
    message = str(info.value)
    assert message.startswith("cannot resolve secret://gcp-sm/missing: NotFound (404)")
    assert "not found or has no versions" in message


async def test_permission_error_names_the_reference_and_status(
    gcp: Gcp, settings: Settings
) -> None:
    fake, _ = gcp
    fake.denied.add("projects/proj-a/secrets/locked/versions/latest")
    with pytest.raises(SecretError) as info:
        await SecretResolver(settings).resolve("secret://gcp-sm/locked")
    message = str(info.value)
    assert message.startswith("cannot resolve secret://gcp-sm/locked: Forbidden (403)")
    assert "secretmanager.versions.access" in message


async def test_rotation_is_picked_up_after_ttl_and_outage_keeps_last_good(
    gcp: Gcp, settings: Settings, clock: ManualClock, json_logs: JsonLogCapture
) -> None:
    fake, _ = gcp
    name = "projects/proj-a/secrets/rot/versions/latest"
    fake.values[name] = "generation-1"
    resolver = SecretResolver(settings, ttl=60, clock=clock)
    ref = "secret://gcp-sm/rot"
    assert await resolver.resolve(ref) == "generation-1"

    fake.values[name] = "generation-2"
    clock.advance(30)
    assert await resolver.resolve(ref) == "generation-1"
    assert len(fake.requests) == 1  # served from the cache, no call
    clock.advance(31)
    assert await resolver.resolve(ref) == "generation-2"

    fake.down = True
    clock.advance(61)
    assert await resolver.resolve(ref) == "generation-2"
    [warning] = [r for r in json_logs.records if r["severity"] == "WARNING"]
    assert "keeping last good value" in warning["message"]
    assert "secret://gcp-sm/rot" in warning["message"]
    assert "InternalServerError (500)" in warning["message"]
    calls = len(fake.requests)
    # The failed refresh is not retried on every call, only after another TTL.
    clock.advance(30)
    assert await resolver.resolve(ref) == "generation-2"
    assert len(fake.requests) == calls

    fake.down = False
    fake.values[name] = "generation-3"
    clock.advance(31)
    assert await resolver.resolve(ref) == "generation-3"


def test_short_name_without_any_project_is_a_clear_error() -> None:
    with pytest.raises(SecretError, match="set secrets.gcp_project or GOOGLE_CLOUD_PROJECT"):
        version_name("token", None)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("projects/p/secrets/s/versions/7", "projects/p/secrets/s/versions/7"),
        ("projects/p/secrets/s", "projects/p/secrets/s/versions/latest"),
        ("s", "projects/dflt/secrets/s/versions/latest"),
        ("s/versions/2", "projects/dflt/secrets/s/versions/2"),
    ],
)
def test_names_expand_to_a_full_version_name(name: str, expected: str) -> None:
    assert version_name(name, "dflt") == expected


@pytest.mark.parametrize("name", ["projects/p/secrets", "a/b", "projects/p/secrets/s/versions/"])
def test_malformed_names_are_rejected(name: str) -> None:
    with pytest.raises(SecretError, match="malformed Secret Manager name"):
        version_name(name, "dflt")

"""Client keys written literally in the configuration are masked in logs like referenced ones."""

from __future__ import annotations

import uuid

from aiservice.config import Settings
from aiservice.secrets.base import SecretResolver
from aiservice.security.apikeys import KeyStore
from aiservice.security.redact import redact

# Unique per run: the registry of secret values is process-wide and never cleared here.
LITERAL = f"literal-client-key-{uuid.uuid4().hex}"
ADMIN = f"literal-admin-key-{uuid.uuid4().hex}"


def test_literal_keys_are_masked_once_the_key_store_exists() -> None:
    settings = Settings.model_validate(
        {"auth": {"api_keys": [LITERAL], "keys": {"ops": {"key": ADMIN, "admin": True}}}}
    )
    line = f"Authorization: Bearer {LITERAL} x-api-key={ADMIN}"
    assert LITERAL in redact(line)  # nothing registered yet: the test can fail
    KeyStore(settings, SecretResolver(settings))
    masked = redact(line)
    assert LITERAL not in masked and ADMIN not in masked
    assert "[REDACTED]" in masked

"""The secret-value registry lives in :mod:`aiservice.observability.redact` (the log
formatter masks with it, and observability sits below security); kept importable here."""

from __future__ import annotations

from ..observability.redact import (
    REDACTED,
    clear_secrets,
    encoded_forms,
    redact,
    register_secret,
)

__all__ = ["REDACTED", "clear_secrets", "encoded_forms", "redact", "register_secret"]

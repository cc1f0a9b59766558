"""Process-wide registry of secret values that must never appear in a log line.

Logging is process-wide, so this registry is too: every resolved ``secret://`` value and
every configured API key is registered here, and the JSON log formatter replaces each
occurrence with ``[REDACTED]`` in the final rendered line (message, extra fields and
tracebacks alike). Its URL-encoded and base64 forms are masked too. Messages that quote an
upstream's body (which may echo a credential we sent) are also redacted where they are
built, so the masking holds under any handler, not only ours.
"""

from __future__ import annotations

import base64
import re
import threading
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "clear_secrets", "encoded_forms", "redact", "register_secret"]

REDACTED = "[REDACTED]"
# Very short values would redact ordinary words; they are not secrets anyone should use.
_MIN_LENGTH = 4

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def encoded_forms(value: str) -> set[str]:
    """``value`` as it is written in URLs (query strings, form bodies) and in base64 (Basic
    auth, data URLs): an upstream that echoes the request it got quotes it so."""
    raw = value.encode("utf-8")
    return {
        value,
        quote(value, safe=""),
        quote_plus(value),
        base64.b64encode(raw).decode("ascii"),
        base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
    }


def register_secret(value: str | None) -> None:
    """Mark ``value`` as secret: it (and its encoded forms) is masked in every log line."""
    global _pattern
    if not value or len(value) < _MIN_LENGTH:
        return
    with _lock:
        if value in _values:
            return
        _values.update(encoded_forms(value))
        # Longest first so a secret that contains another is masked whole.
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def clear_secrets() -> None:
    """Forget every registered value (tests only)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None


def redact(text: str) -> str:
    pattern = _pattern
    if pattern is None:
        return text
    return pattern.sub(REDACTED, text)

"""Process-wide registry of secret values that must never appear in a log line.

Logging is process-wide, so this registry is too: every resolved ``secret://`` value and
every configured API key is registered here, and the JSON log formatter replaces each
occurrence with ``[REDACTED]`` in the final rendered line (message, extra fields and
tracebacks alike).
"""

from __future__ import annotations

import re
import threading

__all__ = ["REDACTED", "redact", "register_secret", "clear_secrets"]

REDACTED = "[REDACTED]"
# Very short values would redact ordinary words; they are not secrets anyone should use.
_MIN_LENGTH = 4

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Mark ``value`` as secret: it is masked in every log line from now on."""
    global _pattern
    if not value or len(value) < _MIN_LENGTH:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
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

"""Walking a settings tree for secret references, and a dump safe to print."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from .settings import Settings

_SECRET_KEY_WORDS = (
    "key",
    "secret",
    "token",
    "password",
    "passwd",
    "credential",
    "authorization",
    "cookie",
    "signature",
)
# Names holding the word but no secret: the ``secrets`` section configures where secrets
# live (project, region, endpoint), and masking it would hide what ``config show`` is for.
_NOT_SECRET = frozenset({"secrets"})
SECRET_PREFIX = "secret://"


def iter_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(dotted.path, string)`` for every string inside a settings tree: dumped, or
    the models themselves (fields in declaration order, as a dump has them; reading the
    models spares building every section's serializer, which startup does not need)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from iter_strings(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from iter_strings(item, f"{path}[{index}]")


def settings_strings(
    model: BaseModel, exclude: frozenset[str] = frozenset()
) -> Iterator[tuple[str, str]]:
    """:func:`iter_strings` of ``model``'s fields but those in ``exclude``."""
    for name in type(model).model_fields:
        if name not in exclude:
            yield from iter_strings(getattr(model, name), name)


def redacted_dump(settings: Settings) -> dict[str, Any]:
    """The effective configuration with literal secrets masked (references are shown)."""

    def mask(value: Any, sensitive: bool) -> Any:
        if isinstance(value, Mapping):
            return {k: mask(v, sensitive or _is_secret_name(str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [mask(v, sensitive) for v in value]
        if isinstance(value, str):
            if value.startswith(SECRET_PREFIX):
                return value
            if sensitive and value:
                return "***"
            return _mask_url_query(_mask_url_password(value))
        return value

    # by_alias: the documented key names (``limits.global``), as a config file spells them.
    dumped = settings.model_dump(mode="json", by_alias=True)
    result: dict[str, Any] = mask(dumped, False)
    return result


def _mask_url_password(value: str) -> str:
    if "://" not in value or "@" not in value:
        return value
    scheme, _, rest = value.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return value
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered not in _NOT_SECRET and any(w in lowered for w in _SECRET_KEY_WORDS)


def _mask_url_query(value: str) -> str:
    """``https://host/x?key=abc`` -> ``?key=***`` (Gemini-style keys in URLs)."""
    if "://" not in value or "?" not in value:
        return value
    base, _, query = value.partition("?")
    query, hash_, fragment = query.partition("#")
    parts = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        parts.append(f"{name}=***" if eq and _is_secret_name(name) else pair)
    return f"{base}?{'&'.join(parts)}{hash_}{fragment}"

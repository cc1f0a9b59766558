"""Build the gateway from settings: one provider per ``providers:`` entry, looked up in
the lazy :data:`~aiservice.providers.base.PROVIDERS` registry (so an SDK is imported only
when a provider of its type is configured)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..providers.base import PROVIDERS, Provider
from ..registry import PluginImportError, PluginNotFoundError
from ..runtime import StartupError
from .deployments import ModelTable
from .gateway import Gateway

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = ["build_gateway"]


async def build_gateway(settings: Settings, secrets: SecretResolver) -> Gateway:
    """The gateway for ``settings``; raises :class:`StartupError` naming the bad key."""
    providers: dict[str, Provider] = {}
    try:
        for name, config in settings.providers.items():
            try:
                factory = PROVIDERS.get(config.type)
            except (PluginNotFoundError, PluginImportError) as exc:
                raise StartupError(f"providers.{name}.type: {exc}") from exc
            providers[name] = factory(name, config, secrets)
        try:
            table = ModelTable(settings.models, providers, settings.providers)
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
    except BaseException:
        for provider in providers.values():
            await provider.aclose()
        raise
    return Gateway(
        table,
        pricing=settings.pricing,
        embeddings=settings.embeddings,
        limits=settings.limits.requests,
    )

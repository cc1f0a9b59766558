"""Model resolution: a public model name (``models:`` in the config) or a direct
``provider/model`` name → the ordered deployments to try (first = primary)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..config import DeploymentSettings, ProviderSettings
from ..errors import ModelNotFoundError
from ..providers.base import Provider

__all__ = ["Deployment", "ModelTable"]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream model on one configured provider."""

    provider_name: str
    model: str
    provider: Provider
    config: ProviderSettings
    native_responses: bool = False
    """``responses_api: native``: the Responses API passes through to it untranslated."""
    key: str = field(init=False, compare=False)
    """``provider/model``: the circuit breaker's key, built once (read on every call)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.provider_name}/{self.model}")


class ModelTable:
    def __init__(
        self,
        models: Mapping[str, Sequence[DeploymentSettings]],
        providers: Mapping[str, Provider],
        configs: Mapping[str, ProviderSettings],
    ) -> None:
        unknown = sorted(
            f"models.{name}: provider {d.provider!r}"
            for name, deployments in models.items()
            for d in deployments
            if d.provider not in providers
        )
        if unknown:
            raise ValueError("unknown provider in " + "; ".join(unknown))
        unable = sorted(
            f"models.{name}[{i}].responses_api: native needs a provider serving /responses "
            f"(type openai), not {d.provider!r}"
            for name, deployments in models.items()
            for i, d in enumerate(deployments)
            if d.responses_api == "native"
            and not callable(getattr(providers[d.provider], "create_response", None))
        )
        if unable:
            raise ValueError("; ".join(unable))
        self._models = {name: list(ds) for name, ds in models.items()}
        self._providers = dict(providers)
        self._configs = dict(configs)
        # Public names resolved once: resolution runs on every request.
        self._resolved = {
            name: tuple(
                self._deployment(d.provider, d.model, d.responses_api == "native") for d in ds
            )
            for name, ds in self._models.items()
        }

    @property
    def public_names(self) -> list[str]:
        return list(self._models)

    @property
    def providers(self) -> Mapping[str, Provider]:
        return self._providers

    def _deployment(self, provider: str, model: str, native: bool = False) -> Deployment:
        p, config = self._providers[provider], self._configs[provider]
        return Deployment(provider, model, p, config, native)

    def resolve(self, name: str) -> list[Deployment]:
        resolved = self._resolved.get(name)
        if resolved is not None:
            return list(resolved)
        provider, sep, model = name.partition("/")
        if sep and model and provider in self._providers:
            return [self._deployment(provider, model)]
        known = ", ".join(self._models) or "none"
        raise ModelNotFoundError(
            f"the model {name!r} does not exist (configured models: {known}; "
            f"or name one as provider/model with a provider of: {', '.join(self._providers)})",
            param="model",
        )

    def exists(self, name: str) -> bool:
        try:
            self.resolve(name)
        except ModelNotFoundError:
            return False
        return True

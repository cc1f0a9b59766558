"""The Responses API passed through untranslated, to deployments declaring
``responses_api: native`` (an OpenAI deployment serving ``/responses`` itself).

The body goes upstream as sent, with the deployment's model name; the answer (or every
streamed event) comes back as sent, with the public model name in ``model``. The call
goes through :meth:`~aiservice.llm.gateway.Gateway.run` (retries, breakers, fallback to
the model's next native deployment, the deadline) and its usage is accounted like a chat
call's. There is no response cache on this path: the upstream keeps conversation state
(``previous_response_id``), which a cached answer would skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..providers.base import ProviderError
from .deployments import Deployment
from .errors import client_error
from .fallback import close_iterator
from .wire.responses_output import chat_usage

if TYPE_CHECKING:
    from ..security.apikeys import Principal
    from .gateway import Gateway

__all__ = ["NativeResponses", "native_create", "native_stream", "serves_natively"]

Event = dict[str, Any]


@runtime_checkable
class NativeResponses(Protocol):
    """A provider that serves the Responses API itself."""

    async def create_response(self, model: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def stream_response(self, model: str, body: dict[str, Any]) -> AsyncIterator[Event]: ...


def serves_natively(deployments: list[Deployment]) -> bool:
    """Pass-through applies when every deployment of the model declares it (a fallback
    never changes the wire format under a client)."""
    return all(d.native_responses for d in deployments)


def _provider(d: Deployment) -> NativeResponses:
    provider = d.provider
    if not isinstance(provider, NativeResponses):  # refused at startup; kept for safety
        raise ProviderError(f"{d.provider_name} cannot serve the Responses API", kind="protocol")
    return provider


def _public(value: Mapping[str, Any], model: str) -> dict[str, Any]:
    """``value`` with ``model`` (and a nested ``response.model``) set to the public name."""
    out = dict(value)
    if "model" in out:
        out["model"] = model
    if isinstance(out.get("response"), dict):
        out["response"] = {**out["response"], "model": model}
    return out


async def native_create(
    gateway: Gateway, model: str, body: dict[str, Any], principal: Principal | None
) -> tuple[dict[str, Any], Deployment]:
    async def call(d: Deployment) -> dict[str, Any]:
        return await _provider(d).create_response(d.model, body)

    response, d = await gateway.run(model, call)
    usage = chat_usage(response.get("usage"))
    await gateway.accountant.report("chat", model, d.provider_name, d.model, usage, principal)
    return _public(response, model), d


async def native_stream(
    gateway: Gateway, model: str, body: dict[str, Any], principal: Principal | None
) -> tuple[AsyncIterator[Event], Deployment]:
    """Returns at the first event (fallback applies until then); later failures leave
    the iterator as :class:`~aiservice.errors.AIServiceError`."""

    async def open_stream(d: Deployment) -> tuple[AsyncIterator[Event], Event]:
        iterator = aiter(_provider(d).stream_response(d.model, body))
        try:
            first = await anext(iterator)
        except StopAsyncIteration as exc:
            raise ProviderError(f"{d.provider_name} sent an empty stream", kind="protocol") from exc
        except BaseException:
            await close_iterator(iterator)
            raise
        return iterator, first

    (iterator, first), d = await gateway.run(model, open_stream)
    return _relay(gateway, model, d, iterator, first, principal), d


async def _relay(
    gateway: Gateway,
    model: str,
    d: Deployment,
    iterator: AsyncIterator[Event],
    first: Event,
    principal: Principal | None,
) -> AsyncIterator[Event]:
    usage: dict[str, Any] | None = None
    try:
        event: Event | None = first
        while event is not None:
            response = event.get("response")
            if isinstance(response, dict) and response.get("usage"):
                usage = response["usage"]
            yield _public(event, model)
            event = await anext(iterator, None)
    except ProviderError as exc:
        raise client_error(exc, d.provider_name) from exc
    finally:
        await close_iterator(iterator)
    await gateway.accountant.report(
        "chat", model, d.provider_name, d.model, chat_usage(usage), principal
    )

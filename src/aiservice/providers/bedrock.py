"""``bedrock``: AWS Bedrock through boto3 ``bedrock-runtime`` Converse / ConverseStream.

Configuration::

    bedrock: {type: bedrock, region: us-east-1}

Credentials come from the standard AWS chain (Lambda / ECS / EC2 role, environment,
profile); no API key. ``base_url`` becomes boto3's ``endpoint_url`` (VPC endpoints, local
test servers), ``timeout`` the connect/read timeouts, ``headers`` extra request headers.
boto3 retries are off: the gateway retries and falls back. boto3 is imported on first
use and its blocking calls run in worker threads, so the event loop never waits on them.
Answers are read within ``limits.max_upstream_body_bytes`` (one event of a stream within
``limits.max_upstream_line_bytes``), as the HTTP providers read theirs
(:mod:`.bedrock_limits`).

Embeddings go through ``InvokeModel`` for Amazon Titan text embeddings
(``amazon.titan-embed-text-*``, one input per call, ``dimensions`` honoured by v2) and
Cohere embed models (``cohere.embed-*``, up to 96 inputs per call); other model families
get a 400. ``list_models`` lists foundation model ids through the ``bedrock`` control
plane client (``base_url``, when set, is its endpoint too).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import InvalidRequestError
from ..observability.redact import register_secret
from ..transport.errors import BodyTooLargeError
from .base import (
    ChatChunk,
    ChatCompletion,
    ChatRequest,
    EmbeddingResult,
    ErrorKind,
    ProviderError,
)
from .bedrock_limits import bound_bodies
from .bedrock_translate import (
    ConverseStream,
    error_for_code,
    from_converse_response,
    to_converse_request,
)
from .http import parse_retry_after
from .jsonhttp import scrub
from .upstream import error_from_exception

if TYPE_CHECKING:
    from ..config import ProviderSettings
    from ..secrets.base import SecretResolver

__all__ = ["BedrockProvider", "map_botocore_error"]

T = TypeVar("T")

COHERE_BATCH = 96
"""Cohere embed on Bedrock accepts at most 96 texts per call."""

_TRANSPORT_ERRORS: tuple[tuple[str, ErrorKind], ...] = (
    ("ConnectTimeoutError", "timeout"),  # before EndpointConnectionError: it subclasses it
    ("ReadTimeoutError", "timeout"),
    ("EndpointConnectionError", "connect"),
    ("ConnectionClosedError", "connect"),
    ("ResponseStreamingError", "connect"),
    ("NoCredentialsError", "auth"),
    ("PartialCredentialsError", "auth"),
    ("NoRegionError", "auth"),
)
_END = object()

_session: Any = None
_session_lock = threading.Lock()  # boto3 sessions are not thread-safe while making clients


def _shared_session() -> Any:
    """One boto3 session per process: it parses the service models once (a cold-start cost
    paid by the first client only) and shares credential refresh between providers."""
    global _session
    if _session is None:
        import boto3

        _session = boto3.session.Session()
    return _session


def map_botocore_error(exc: Exception, provider: str) -> ProviderError:
    """A :class:`ProviderError` for a botocore (or underlying urllib3) exception."""
    import urllib3
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):  # includes EventStreamError (errors inside a stream)
        error = exc.response.get("Error") or {}
        meta: dict[str, Any] = dict(exc.response.get("ResponseMetadata") or {})
        mapped = error_for_code(
            str(error.get("Code") or "UnknownError"),
            str(error.get("Message") or "no message"),
            provider,
            meta.get("HTTPStatusCode"),
        )
        mapped.retry_after = parse_retry_after(meta.get("HTTPHeaders") or {})
        return mapped
    for name, kind in _TRANSPORT_ERRORS:
        if isinstance(exc, getattr(bx, name)):
            return ProviderError(f"{provider}: {exc}", kind=kind, provider=provider)
    if isinstance(exc, urllib3.exceptions.HTTPError):
        # botocore's event-stream reader lets urllib3 errors through when a stream is cut.
        message = f"{provider}: stream interrupted ({type(exc).__name__})"
        return ProviderError(message, kind="connect", provider=provider)
    return ProviderError(f"{provider}: {type(exc).__name__}: {exc}", kind="protocol")


class BedrockProvider:
    """One configured Bedrock upstream; see the module docstring."""

    def __init__(self, name: str, config: ProviderSettings, secrets: SecretResolver) -> None:
        self.name = name
        self._config = config
        self._clients: dict[str, Any] = {}
        self._secret_values: list[str] = []

    # -- plumbing ---------------------------------------------------------------------------

    def _client(self, service: str) -> Any:
        with _session_lock:  # client creation is not thread-safe; the clients themselves are
            if service not in self._clients:
                self._clients[service] = self._make_client(service)
            return self._clients[service]

    def _make_client(self, service: str) -> Any:
        from botocore.config import Config

        timeout = self._config.timeout
        session = _shared_session()
        factory: Any = session.client  # boto3-stubs overloads need a literal service name
        client = factory(
            service,
            region_name=self._config.region,
            endpoint_url=self._config.base_url,
            config=Config(
                connect_timeout=min(timeout, 10.0),
                read_timeout=timeout,
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=50,
                user_agent_extra="aiservice",
            ),
        )
        bound_bodies(client)  # limits.max_upstream_body_bytes / _line_bytes, as over HTTP
        credentials = session.get_credentials()
        if credentials is not None:
            # Never let the key reach a log line or an error message.
            secret = credentials.get_frozen_credentials().secret_key
            if secret:
                self._secret_values.append(secret)
                register_secret(secret)
        if self._config.headers:
            client.meta.events.register("before-sign.*.*", self._add_headers)
        return client

    def _add_headers(self, request: Any, **_: Any) -> None:
        for key, value in self._config.headers.items():
            request.headers[key] = value

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking boto3 call in a worker thread; botocore errors → ProviderError."""

        def run() -> T:
            return fn(*args, **kwargs)

        try:
            return await asyncio.to_thread(run)
        except BodyTooLargeError as exc:  # the answer went over its bound (bedrock_limits)
            raise error_from_exception(exc, self.name) from exc
        except Exception as exc:
            if type(exc).__module__.startswith(("botocore", "urllib3")):
                error = map_botocore_error(exc, self.name)
                raise scrub(error, self._secret_values) from exc
            raise

    async def _runtime(self) -> Any:
        return await self._call(self._client, "bedrock-runtime")

    # -- chat -------------------------------------------------------------------------------

    async def chat(self, model: str, request: ChatRequest) -> ChatCompletion:
        kwargs = to_converse_request(model, request)
        client = await self._runtime()
        response = await self._call(client.converse, **kwargs)
        return from_converse_response(response, model)

    async def stream_chat(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        kwargs = to_converse_request(model, request)
        client = await self._runtime()
        response = await self._call(client.converse_stream, **kwargs)
        stream = response["stream"]
        events = iter(stream)
        translator = ConverseStream(self.name, model)
        request_id = (response.get("ResponseMetadata") or {}).get("RequestId")
        if request_id:
            translator.id = f"chatcmpl-{request_id}"
        try:
            while True:
                event = await self._call(next, events, _END)
                if event is _END:
                    break
                for chunk in translator.feed(event):
                    yield chunk
        finally:
            # Closing releases the pooled connection when the consumer stops early.
            await asyncio.to_thread(stream.close)
        for chunk in translator.finish():
            yield chunk

    # -- embeddings -------------------------------------------------------------------------

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingResult:
        if not inputs:
            return EmbeddingResult([], 0)
        if "titan-embed" in model:
            return await self._embed_titan(model, inputs, dimensions)
        if "cohere.embed" in model:
            return await self._embed_cohere(model, inputs, dimensions)
        raise InvalidRequestError(
            f"bedrock embeddings support amazon.titan-embed-* and cohere.embed-* models, "
            f"not {model!r}",
            code="unsupported",
            param="model",
        )

    async def _invoke(self, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        client = await self._runtime()
        response = await self._call(
            client.invoke_model,
            modelId=model,
            body=json.dumps(body).encode(),
            contentType="application/json",
            accept="application/json",
        )
        payload = json.loads(await self._call(response["body"].read))
        headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
        count = headers.get("x-amzn-bedrock-input-token-count")
        return payload, int(count) if count else None

    async def _embed_titan(
        self, model: str, inputs: list[str], dimensions: int | None
    ) -> EmbeddingResult:
        limit = asyncio.Semaphore(8)  # Titan takes one text per call: bounded fan-out

        async def one(text: str) -> tuple[list[float], int]:
            body: dict[str, Any] = {"inputText": text}
            if dimensions:
                body["dimensions"] = dimensions
            async with limit:
                payload, header_count = await self._invoke(model, body)
            tokens = (
                header_count if header_count is not None else payload.get("inputTextTokenCount")
            )
            return [float(x) for x in payload["embedding"]], int(tokens or 0)

        results = await asyncio.gather(*(one(text) for text in inputs))
        return EmbeddingResult([v for v, _ in results], sum(t for _, t in results))

    async def _embed_cohere(
        self, model: str, inputs: list[str], dimensions: int | None
    ) -> EmbeddingResult:
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(inputs), COHERE_BATCH):
            body: dict[str, Any] = {
                "texts": inputs[start : start + COHERE_BATCH],
                "input_type": "search_document",
            }
            if dimensions:
                body["output_dimension"] = dimensions  # embed v4; v3 rejects it upstream
            payload, count = await self._invoke(model, body)
            embeddings = payload["embeddings"]
            if isinstance(embeddings, dict):  # embedding_types responses are keyed by type
                embeddings = embeddings["float"]
            vectors.extend([float(x) for x in vector] for vector in embeddings)
            tokens += count or 0
        if len(vectors) != len(inputs):
            raise ProviderError(
                f"{self.name} returned {len(vectors)} embeddings for {len(inputs)} inputs",
                kind="protocol",
                provider=self.name,
            )
        return EmbeddingResult(vectors, tokens)

    # -- models -----------------------------------------------------------------------------

    async def list_models(self) -> list[str]:
        control = await self._call(self._client, "bedrock")
        response = await self._call(control.list_foundation_models)
        return [m["modelId"] for m in response.get("modelSummaries") or [] if m.get("modelId")]

    async def probe(self) -> str:
        """``ListFoundationModels``: signed, so it checks the credentials and region."""
        return f"{len(await self.list_models())} models"

    async def aclose(self) -> None:
        with _session_lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

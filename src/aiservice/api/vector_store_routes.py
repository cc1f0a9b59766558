"""The routes of OpenAI's vector store API (``/v1/vector_stores``, its files and search).

The capability itself (its start hook, the queue worker's entry) is
:mod:`aiservice.api.vector_stores`; these routes are included with the deferred routers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from ..errors import NotFoundError
from ..runtime import Runtime
from ..vectors.service import VectorStores
from .deps import CallerPrincipal
from .responses import errors
from .routing import JsonRoute
from .vector_store_schemas import (
    AttachRequest,
    Deleted,
    SearchPage,
    SearchRequest,
    VectorStore,
    VectorStoreCreate,
    VectorStoreFile,
    VectorStoreFileList,
    VectorStoreList,
)

__all__ = ["SharedPathRoute", "VectorsDep", "get_vectors", "page", "router"]


class SharedPathRoute(JsonRoute):
    """A route sharing its path with others (``GET`` and ``POST /v1/vector_stores``): a
    405 lists every method the path allows in ``Allow``, not only this route's (Starlette
    answers from the first route whose path matches)."""

    allowed: ClassVar[dict[str, set[str]]] = {}

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        # From the declaration: reading self.methods would build the deferred route now.
        methods = kwargs.get("methods") or ("GET",)  # APIRoute's default
        self.allowed.setdefault(path, set()).update(m.upper() for m in methods)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            allow = ", ".join(sorted(self.allowed.get(self.path, self.methods)))
            raise HTTPException(status_code=405, headers={"Allow": allow})
        await super().handle(scope, receive, send)


router = APIRouter(tags=["vector stores"], route_class=SharedPathRoute)

POLL_AFTER_MS = "100"
"""``openai-poll-after-ms`` on attached files: how often the SDK's ``*_and_poll`` ask."""


async def get_vectors(request: Request) -> VectorStores:
    runtime: Runtime = request.app.state.aiservice
    if runtime.vectors is None:
        # 404, not 503: nothing is down, the resource does not exist on this service.
        raise NotFoundError(
            "vector stores are not enabled on this service (vectors.backend)",
            code="vector_stores_not_configured",
        )
    return runtime.vectors


VectorsDep = Annotated[VectorStores, Depends(get_vectors)]
Order = Literal["asc", "desc"]


def page(
    items: list[dict[str, Any]], limit: int, order: Order, after: str | None
) -> dict[str, Any]:
    """OpenAI's cursor list: items arrive newest first."""
    if order == "asc":
        items = items[::-1]
    if after is not None:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    data = items[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(items) > limit,
    }


def _plain(model: BaseModel | None) -> dict[str, Any] | None:
    """The validated body part as the plain JSON the service parses (OpenAI's shape)."""
    return None if model is None else model.model_dump(exclude_unset=True)


Limit = Annotated[int, Query(ge=1, le=100)]
_ERRORS = errors(400, 404, 503)


@router.post(
    "/v1/vector_stores",
    summary="Create a vector store",
    response_model=None,
    responses={200: {"model": VectorStore, "description": "The store"}, **_ERRORS},
)
async def create_store(
    body: VectorStoreCreate, who: CallerPrincipal, vectors: VectorsDep
) -> dict[str, Any]:
    for file_id in body.file_ids or ():
        await vectors.get_file(file_id, who)  # 404 before anything is created
    store = await vectors.create_store(who, body.name, body.metadata)
    for file_id in body.file_ids or ():
        await vectors.attach(store["id"], file_id, who, None, _plain(body.chunking_strategy))
    return await vectors.get_store(store["id"], who)


@router.get(
    "/v1/vector_stores",
    summary="List vector stores",
    response_model=None,
    responses={200: {"model": VectorStoreList, "description": "Newest first"}, **_ERRORS},
)
async def list_stores(
    who: CallerPrincipal,
    vectors: VectorsDep,
    limit: Limit = 20,
    order: Order = "desc",
    after: str | None = None,
) -> dict[str, Any]:
    return page(await vectors.list_stores(who), limit, order, after)


@router.get(
    "/v1/vector_stores/{vector_store_id}",
    summary="A vector store",
    response_model=None,
    responses={200: {"model": VectorStore, "description": "The store"}, **_ERRORS},
)
async def get_store(vector_store_id: str, who: CallerPrincipal, vectors: VectorsDep) -> Any:
    return await vectors.get_store(vector_store_id, who)


@router.delete(
    "/v1/vector_stores/{vector_store_id}",
    summary="Delete a vector store and its vectors",
    response_model=None,
    responses={200: {"model": Deleted, "description": "Deleted"}, **_ERRORS},
)
async def delete_store(vector_store_id: str, who: CallerPrincipal, vectors: VectorsDep) -> Any:
    return await vectors.delete_store(vector_store_id, who)


@router.post(
    "/v1/vector_stores/{vector_store_id}/files",
    summary="Attach a file: chunk, embed and index it in the background",
    response_model=None,
    responses={200: {"model": VectorStoreFile, "description": "in_progress"}, **_ERRORS},
)
async def attach_file(
    vector_store_id: str,
    body: AttachRequest,
    who: CallerPrincipal,
    vectors: VectorsDep,
    response: Response,
) -> Any:
    response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return await vectors.attach(
        vector_store_id, body.file_id, who, body.attributes, _plain(body.chunking_strategy)
    )


@router.get(
    "/v1/vector_stores/{vector_store_id}/files",
    summary="Files attached to a vector store",
    response_model=None,
    responses={200: {"model": VectorStoreFileList, "description": "Newest first"}, **_ERRORS},
)
async def list_files(
    vector_store_id: str,
    who: CallerPrincipal,
    vectors: VectorsDep,
    limit: Limit = 20,
    order: Order = "desc",
    after: str | None = None,
    filter: Literal["in_progress", "completed", "failed", "cancelled"] | None = None,
) -> dict[str, Any]:
    files = await vectors.list_files(vector_store_id, who)
    if filter is not None:
        files = [f for f in files if f["status"] == filter]
    return page(files, limit, order, after)


@router.get(
    "/v1/vector_stores/{vector_store_id}/files/{file_id}",
    summary="An attached file and its status",
    response_model=None,
    responses={200: {"model": VectorStoreFile, "description": "The file"}, **_ERRORS},
)
async def get_file(
    vector_store_id: str,
    file_id: str,
    who: CallerPrincipal,
    vectors: VectorsDep,
    response: Response,
) -> Any:
    response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return await vectors.get_store_file(vector_store_id, file_id, who)


@router.delete(
    "/v1/vector_stores/{vector_store_id}/files/{file_id}",
    summary="Detach a file and delete its vectors",
    response_model=None,
    responses={200: {"model": Deleted, "description": "Detached"}, **_ERRORS},
)
async def detach_file(
    vector_store_id: str, file_id: str, who: CallerPrincipal, vectors: VectorsDep
) -> Any:
    return await vectors.detach(vector_store_id, file_id, who)


@router.post(
    "/v1/vector_stores/{vector_store_id}/search",
    summary="Search a vector store",
    response_model=None,
    responses={200: {"model": SearchPage, "description": "Best first"}, **_ERRORS},
)
async def search(
    vector_store_id: str, body: SearchRequest, who: CallerPrincipal, vectors: VectorsDep
) -> Any:
    threshold = body.ranking_options.score_threshold if body.ranking_options else None
    return await vectors.search(
        vector_store_id, who, body.query, body.max_num_results, _plain(body.filters), threshold
    )

"""OpenAI's ``/v1/files`` for vector stores: upload (multipart), read, delete.

Uploads are bounded twice: the whole request by ``limits.max_body_bytes`` (the body limit
middleware, while it streams in) and the file by ``vectors.files.max_bytes`` (413, nothing
stored). Bytes go to the configured blob backend (``vectors.files.backend``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.routing import APIRoute

from ..errors import UnsupportedMediaTypeError
from .deps import CallerPrincipal
from .responses import errors
from .routing import BODY_METHODS, Handler
from .vector_store_routes import SharedPathRoute, VectorsDep
from .vector_store_schemas import Deleted, FileObject

__all__ = ["router"]


class MultipartRoute(SharedPathRoute):
    """The strict-body route of uploads: a body must be ``multipart/form-data`` (415
    otherwise), parsed by FastAPI within the body limits; JSON bodies are not read."""

    def get_route_handler(self) -> Handler:
        handler = APIRoute.get_route_handler(self)
        if not (self.methods or set()) & BODY_METHODS:
            return handler

        async def guarded(request: Request) -> Response:
            content_type = request.headers.get("content-type") or ""
            if content_type.partition(";")[0].strip().lower() != "multipart/form-data":
                raise UnsupportedMediaTypeError(
                    f"request body must be multipart/form-data, not {content_type or 'untyped'}",
                    param="Content-Type",
                )
            return await handler(request)

        return guarded


router = APIRouter(tags=["vector stores"], route_class=MultipartRoute)

_ERRORS = errors(400, 404, 503)


@router.post(
    "/v1/files",
    summary="Upload a file (purpose assistants or user_data)",
    response_model=None,
    responses={
        200: {"model": FileObject, "description": "The stored file"},
        **errors(400, 404, 413, 415, 422, 503),
    },
)
async def create_file(
    file: Annotated[UploadFile, File(description="The file (UTF-8 text or Markdown)")],
    purpose: Annotated[Literal["assistants", "user_data"], Form()],
    who: CallerPrincipal,
    vectors: VectorsDep,
) -> Any:
    limit = vectors.settings.files.max_bytes
    # Read one byte more than allowed: enough to know it is too large, never the rest.
    data = await file.read(limit + 1)
    return await vectors.upload(data, file.filename or "upload", purpose, who)


@router.get(
    "/v1/files/{file_id}",
    summary="A file's metadata",
    response_model=None,
    responses={200: {"model": FileObject, "description": "The file"}, **_ERRORS},
)
async def get_file(file_id: str, who: CallerPrincipal, vectors: VectorsDep) -> Any:
    return await vectors.get_file(file_id, who)


@router.delete(
    "/v1/files/{file_id}",
    summary="Delete a file",
    response_model=None,
    responses={200: {"model": Deleted, "description": "Deleted"}, **_ERRORS},
)
async def delete_file(file_id: str, who: CallerPrincipal, vectors: VectorsDep) -> Any:
    return await vectors.delete_file(file_id, who)

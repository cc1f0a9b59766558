"""Request and response bodies of ``/v1/files`` and ``/v1/vector_stores`` (OpenAI's shapes).

Requests keep unknown fields (newer OpenAI parameters do not break a client); the
response models document the wire format, handlers build plain dicts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

__all__ = [
    "AttachRequest",
    "Deleted",
    "FileObject",
    "SearchPage",
    "SearchRequest",
    "VectorStore",
    "VectorStoreCreate",
    "VectorStoreFile",
    "VectorStoreFileList",
    "VectorStoreList",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class AutoChunking(_Open):
    type: Literal["auto"]


class StaticSizes(_Open):
    max_chunk_size_tokens: StrictInt = Field(ge=100, le=4096)
    chunk_overlap_tokens: StrictInt = Field(ge=0, le=2048)
    """At most half of ``max_chunk_size_tokens`` (400 otherwise)."""


class StaticChunking(_Open):
    type: Literal["static"]
    static: StaticSizes


ChunkingStrategy = Annotated[AutoChunking | StaticChunking, Field(discriminator="type")]
Scalar = StrictStr | StrictInt | StrictFloat | StrictBool


class ComparisonFilter(_Open):
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: str
    value: Scalar | list[Scalar]


class CompoundFilter(_Open):
    type: Literal["and", "or"]
    filters: list[ComparisonFilter | CompoundFilter] = Field(min_length=1)


SearchFilter = Annotated[ComparisonFilter | CompoundFilter, Field(discriminator="type")]


class VectorStoreCreate(_Open):
    name: str | None = Field(None, max_length=256)
    metadata: dict[str, str] | None = Field(None, max_length=16)
    file_ids: list[str] | None = Field(None, max_length=500)
    """Files attached at creation (each processed like ``POST .../files``)."""
    chunking_strategy: ChunkingStrategy | None = None


class AttachRequest(_Open):
    file_id: str = Field(max_length=128)
    attributes: dict[str, Scalar] | None = Field(None, max_length=16)
    chunking_strategy: ChunkingStrategy | None = None


class RankingOptions(_Open):
    ranker: str | None = None
    score_threshold: StrictFloat | StrictInt | None = Field(None, ge=0, le=1)
    """Only results scoring at least this (cosine similarity for the default distance)."""


class SearchRequest(_Open):
    query: str | list[str] = Field(min_length=1)
    max_num_results: StrictInt = Field(10, ge=1, le=1000)
    filters: SearchFilter | None = None
    """OpenAI comparison (``eq ne gt gte lt lte in nin``) or compound (``and or``) filter on
    ``file_id``, ``filename`` and the attributes declared in ``vectors.attributes``."""
    ranking_options: RankingOptions | None = None
    rewrite_query: StrictBool = False


class FileObject(BaseModel):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str
    expires_at: int | None = None


class FileCounts(BaseModel):
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int


class VectorStore(BaseModel):
    id: str
    object: Literal["vector_store"]
    created_at: int
    last_active_at: int | None
    name: str | None
    metadata: dict[str, str] | None
    usage_bytes: int
    file_counts: FileCounts
    status: Literal["expired", "in_progress", "completed"]
    expires_after: dict[str, Any] | None = None
    expires_at: int | None = None


class VectorStoreList(BaseModel):
    object: Literal["list"]
    data: list[VectorStore]
    first_id: str | None
    last_id: str | None
    has_more: bool


class LastError(BaseModel):
    code: Literal["server_error", "unsupported_file", "invalid_file"]
    message: str


class VectorStoreFile(BaseModel):
    id: str
    object: Literal["vector_store.file"]
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    last_error: LastError | None
    usage_bytes: int
    attributes: dict[str, str | int | float | bool] | None
    chunking_strategy: dict[str, Any] | None


class VectorStoreFileList(BaseModel):
    object: Literal["list"]
    data: list[VectorStoreFile]
    first_id: str | None
    last_id: str | None
    has_more: bool


class SearchContent(BaseModel):
    type: Literal["text"]
    text: str


class SearchResult(BaseModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, str | int | float | bool] | None
    content: list[SearchContent]


class SearchPage(BaseModel):
    object: Literal["vector_store.search_results.page"]
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool
    next_page: str | None


class Deleted(BaseModel):
    id: str
    object: str
    deleted: bool

"""The ``vectors`` section: vector stores (OpenAI ``/v1/vector_stores``), files and ingest.

Unset ``backend`` (the default) switches the feature off: nothing vector-related is
imported or built, and the routes answer 404 ``vector_stores_not_configured``.
"""

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from .factories import new_dict
from .sections import MiB, Section, defaults

__all__ = ["ChunkingSettings", "FilesSettings", "VectorsSettings"]

AttributeType = Literal["keyword", "integer", "float", "bool"]


class ChunkingSettings(Section):
    """How attached files are cut before embedding (see docs/vectors.md#chunking)."""

    unit: Literal["tokens", "chars"] = "tokens"
    """``tokens`` are estimated as 4 characters each (no tokenizer is loaded)."""
    size: int = Field(800, ge=10)
    """Largest chunk, in ``unit`` (OpenAI's ``auto`` strategy: 800 tokens)."""
    overlap: int = Field(400, ge=0)
    """Text repeated from the end of one chunk at the start of the next (at most size/2)."""

    @field_validator("overlap")
    @classmethod
    def _overlap_fits(cls, value: int, info: ValidationInfo) -> int:
        size = info.data.get("size")
        if isinstance(size, int) and value * 2 > size:
            raise ValueError("overlap must be at most half of size")
        return value


class FilesSettings(Section):
    """Where ``POST /v1/files`` keeps uploaded bytes."""

    backend: str = "local"
    """Blob backend: ``local`` (a directory), ``s3`` (``aiservice[aws]``), ``gcs``
    (``aiservice[gcp]``)."""
    directory: str = "./data/files"
    """``local``: the directory (created on demand)."""
    bucket: str | None = None
    """``s3``, ``gcs``: the bucket."""
    prefix: str = "aiservice/files/"
    """``s3``, ``gcs``: key (object name) prefix."""
    emulator_endpoint: str | None = None
    """``gcs``: an emulator's URL (``http://127.0.0.1:9023``), reached with anonymous
    credentials; unset = storage.googleapis.com with Application Default Credentials."""
    max_bytes: int = Field(32 * MiB, ge=1)
    """Largest accepted upload (413 above). ``limits.max_body_bytes`` bounds every request
    body too: raise both for large files."""


class VectorsSettings(Section):
    backend: str | None = None
    """Vector store backend (``qdrant``); unset = vector stores off."""
    location: str = ":memory:"
    """Embedded Qdrant: ``:memory:`` or a directory on disk (one process at a time)."""
    url: str | None = None
    """Qdrant server URL (``http://qdrant:6333``); set = server mode, ``location`` unused."""
    api_key: str | None = None
    """Qdrant server API key, a literal or a ``secret://`` reference."""
    prefer_grpc: bool = False
    """Server mode: talk gRPC (port 6334) instead of REST."""
    timeout_seconds: float = Field(10.0, gt=0)
    collection_prefix: str = "aiservice_"
    """Every collection this service creates starts with it (stores: ``<prefix>vs_...``)."""
    embedding_model: str | None = None
    """Public model name (``models:``) that embeds chunks and queries; the service does not
    start with a backend and no model (vector stores from ``aiservice ingest`` with
    precomputed vectors need none, but searching them by text does)."""
    distance: Literal["cosine", "dot", "euclid"] = "cosine"
    attributes: dict[str, AttributeType] = Field(default_factory=new_dict)
    """Attributes search ``filters`` may use, with their payload index type. A filter on
    any other key is refused (400). ``file_id`` and ``filename`` are always filterable."""
    chunking: ChunkingSettings = Field(default_factory=defaults(ChunkingSettings))
    files: FilesSettings = Field(default_factory=defaults(FilesSettings))
    max_results: int = Field(50, ge=1, le=1000)
    """Upper bound of ``max_num_results``."""
    embed_batch: int = Field(64, ge=1)
    """Chunks sent to the embeddings path per call when a file is attached."""
    sharing: Literal["owner", "all"] = "owner"
    """``owner``: a store and a file are visible only to the API key that created them
    (and admin keys); ``all``: to every key."""

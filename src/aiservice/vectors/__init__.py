"""Vector stores: a backend registry (Qdrant), chunking, blob storage for uploaded files,
and the service behind OpenAI's ``/v1/files`` and ``/v1/vector_stores`` routes.

Nothing here is imported unless ``vectors.backend`` is configured (see docs/vectors.md).
"""

from __future__ import annotations

from .base import BACKENDS, VectorBackend

__all__ = ["BACKENDS", "VectorBackend"]

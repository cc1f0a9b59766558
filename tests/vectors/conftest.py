"""Vector tests run on embedded Qdrant; set ``AISERVICE_TEST_QDRANT_URL`` (and optionally
``AISERVICE_TEST_QDRANT_API_KEY``) to run the same suites against a Qdrant server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

QDRANT_URL = os.environ.get("AISERVICE_TEST_QDRANT_URL")
QDRANT_API_KEY = os.environ.get("AISERVICE_TEST_QDRANT_API_KEY")


def qdrant_config(location: str = ":memory:") -> dict[str, Any]:
    """The ``vectors`` backend keys for the selected mode (embedded unless the env var)."""
    if QDRANT_URL:
        return {"backend": "qdrant", "url": QDRANT_URL, "api_key": QDRANT_API_KEY}
    return {"backend": "qdrant", "location": location}


@pytest.fixture
def qdrant_mode() -> str:
    return "server" if QDRANT_URL else "embedded"


CLIENT_KEY = "vectors-client-key-7f3a9c1e5b2d8046"
OTHER_KEY = "vectors-other-key-2b8d4f6a1c9e7035"
ADMIN_KEY = "vectors-admin-key-5e1c7a3f9b2d4086"


@pytest.fixture(scope="session")
def embeddings_url() -> Iterator[str]:
    from .embed_server import EmbeddingsUpstream, serve_embeddings

    with serve_embeddings(EmbeddingsUpstream()) as url:
        yield url


def _drop_server_collections(prefix: str) -> None:
    """Server mode: delete what a test created (collection names start with ``prefix``)."""
    from qdrant_client import QdrantClient

    client = QdrantClient(url=QDRANT_URL, api_key=QDRANT_API_KEY)
    try:
        for collection in client.get_collections().collections:
            if collection.name.startswith(prefix):
                client.delete_collection(collection.name)
    finally:
        client.close()


@pytest.fixture
def vector_config(embeddings_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Config: an OpenAI-type provider on the loopback embeddings upstream, model ``embed``,
    two client keys and an admin key, vector stores on Qdrant (embedded unless the env var)."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    yield {
        "providers": {
            "bow": {
                "type": "openai",
                "base_url": embeddings_url + "/v1",
                "api_key": "sk-loopback-embeddings-0001",
                "max_retries": 1,
                "timeout": 5.0,
            }
        },
        "models": {"embed": [{"provider": "bow", "model": "bow-256"}]},
        "auth": {"api_keys": [CLIENT_KEY, OTHER_KEY], "admin_keys": [ADMIN_KEY]},
        "vectors": {
            **qdrant_config(),
            "embedding_model": "embed",
            "collection_prefix": prefix,
            "attributes": {"topic": "keyword", "year": "integer"},
            "files": {"directory": str(tmp_path / "files"), "max_bytes": 64 * 1024},
            "chunking": {"unit": "chars", "size": 400, "overlap": 80},
        },
    }
    if QDRANT_URL:
        _drop_server_collections(prefix)

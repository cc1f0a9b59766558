"""Vector tests run on embedded Qdrant; set ``AISERVICE_TEST_QDRANT_URL`` (and optionally
``AISERVICE_TEST_QDRANT_API_KEY``) to run the same suites against a Qdrant server."""

from __future__ import annotations

import os
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

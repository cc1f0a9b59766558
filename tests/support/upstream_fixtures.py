"""Pytest fixtures serving one test upstream (:class:`OpenAIUpstream` or a subclass).

``server, fresh = upstream_fixtures(OllamaUpstream, name="ollama")`` at module level (or in
a conftest) defines two fixtures: ``ollama_server`` (the upstream and its base URL, served
once per ``scope``) and ``ollama`` (the same upstream, reset before each test and left
without an injected failure after it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.support.servers import serve_app
from tests.support.upstream_openai import OpenAIUpstream

U = TypeVar("U", bound=OpenAIUpstream)


def upstream_fixtures(
    make: Callable[[], U], *, name: str = "upstream", scope: Any = "module"
) -> tuple[Any, Any]:
    """The ``<name>_server`` and ``<name>`` fixtures; assign them to those module names."""
    server_name = f"{name}_server"

    @pytest.fixture(scope=scope, name=server_name)
    def server() -> Iterator[tuple[U, str]]:
        upstream = make()
        with serve_app(upstream.app) as url:
            yield upstream, url

    @pytest.fixture(name=name)
    def fresh(request: pytest.FixtureRequest) -> Iterator[U]:
        upstream: U = request.getfixturevalue(server_name)[0]
        upstream.reset()
        yield upstream
        upstream.inject(None)  # a failure injected by the test must not outlive it

    return server, fresh

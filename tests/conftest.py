"""Shared fixtures: settings without ambient environment, in-process clients, log capture."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest

from aiservice import Settings, create_app
from aiservice.config import load_settings
from aiservice.observability.logging import JsonFormatter
from aiservice.security.redact import clear_secrets

MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Any) -> MakeSettings:
    """Settings from a dict (as if it were the YAML file) and an explicit environment.

    Never reads the developer's real environment or ``.env``, so tests are hermetic.
    """

    def make(data: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
        import yaml

        path = tmp_path / "aiservice.yaml"
        path.write_text(yaml.safe_dump(data or {}))
        return load_settings(path, environ=environ or {}, dotenv_file=None, cwd=tmp_path)

    return make


@asynccontextmanager
async def app_client(settings: Settings, **client_kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client bound to a fresh app in-process, with the lifespan run around it."""
    app = create_app(settings, configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", **client_kwargs
        ) as client:
            yield client


@pytest.fixture
def client_for() -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    return app_client


class JsonLogCapture(logging.Handler):
    """Collects aiservice log records rendered by the real JSON formatter."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@contextmanager
def capture_json_logs(formatter: JsonFormatter | None = None) -> Iterator[JsonLogCapture]:
    """Every ``aiservice`` record at DEBUG, rendered by ``formatter`` (default: plain JSON)."""
    handler = JsonLogCapture()
    if formatter is not None:
        handler.setFormatter(formatter)
    logger = logging.getLogger("aiservice")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@pytest.fixture
def json_logs() -> Iterator[JsonLogCapture]:
    with capture_json_logs() as handler:
        yield handler


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    clear_secrets()

"""Bad input gets a 4xx envelope and leaves nothing half-written behind."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiservice import Settings
from aiservice.vectors.base import Point

from ..conftest import MakeSettings, app_client
from .conftest import CLIENT_KEY

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}


@pytest.fixture
def settings(make_settings: MakeSettings, vector_config: dict[str, Any]) -> Settings:
    return make_settings(vector_config)


def envelope(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    if code is not None:
        assert error["code"] == code, error
    return error


async def upload(http: httpx.AsyncClient, data: bytes, name: str = "a.txt") -> httpx.Response:
    return await http.post(
        "/v1/files", headers=AUTH, files={"file": (name, data)}, data={"purpose": "assistants"}
    )


async def records(http: httpx.AsyncClient, kind: str) -> list[dict[str, Any]]:
    runtime = http._transport.app.state.aiservice  # type: ignore[attr-defined]
    found: list[dict[str, Any]] = await runtime.vectors.meta.find(kind)
    return found


async def test_an_oversize_file_is_413_and_stores_nothing(settings: Settings) -> None:
    blobs = Path(settings.vectors.files.directory)
    async with app_client(settings) as http:
        error = envelope(await upload(http, b"x" * (64 * 1024 + 1)), 413)
        assert error["param"] == "vectors.files.max_bytes"
        assert await records(http, "file") == []
        # Over the request body limit: refused by the edge before the route runs.
        big = b"y" * (settings.limits.max_body_bytes + 10)
        envelope(await upload(http, big), 413)
        assert await records(http, "file") == []
        assert not blobs.exists() or list(blobs.iterdir()) == []
        assert (await upload(http, b"x" * (64 * 1024))).status_code == 200


async def test_upload_shape_errors(settings: Settings) -> None:
    async with app_client(settings) as http:
        bad = await http.post(
            "/v1/files", headers=AUTH, files={"file": ("a.txt", b"x")}, data={"purpose": "batch"}
        )
        envelope(bad, 422)
        no_file = {"purpose": (None, "assistants")}
        envelope(await http.post("/v1/files", headers=AUTH, files=no_file), 422)
        envelope(await http.post("/v1/files", headers=AUTH, data={"purpose": "x"}), 415)
        envelope(await http.post("/v1/files", headers=AUTH, json={"purpose": "x"}), 415)
        assert await records(http, "file") == []


async def test_unknown_store_and_file_are_404(settings: Settings) -> None:
    async with app_client(settings) as http:
        for method, path, body in [
            ("GET", "/v1/vector_stores/vs_nope", None),
            ("DELETE", "/v1/vector_stores/vs_nope", None),
            ("GET", "/v1/vector_stores/vs_nope/files", None),
            ("POST", "/v1/vector_stores/vs_nope/search", {"query": "x"}),
            ("POST", "/v1/vector_stores/vs_nope/files", {"file_id": "file-x"}),
            ("GET", "/v1/files/file-nope", None),
            ("DELETE", "/v1/files/file-nope", None),
        ]:
            response = await http.request(method, path, headers=AUTH, json=body)
            envelope(response, 404)
        store = (await http.post("/v1/vector_stores", headers=AUTH, json={})).json()
        attach = await http.post(
            f"/v1/vector_stores/{store['id']}/files", headers=AUTH, json={"file_id": "file-x"}
        )
        envelope(attach, 404, "file_not_found")
        envelope(await http.get(f"/v1/vector_stores/{store['id']}/files/file-x", headers=AUTH), 404)
        assert await records(http, "vsfile") == []
        # A store created with unknown file_ids is not created at all.
        created = await http.post("/v1/vector_stores", headers=AUTH, json={"file_ids": ["file-x"]})
        envelope(created, 404)
        assert len(await records(http, "store")) == 1


async def _ready_store(http: httpx.AsyncClient) -> str:
    store = (await http.post("/v1/vector_stores", headers=AUTH, json={"name": "s"})).json()
    file = (await upload(http, b"Cats purr and dogs bark.")).json()
    attach = await http.post(
        f"/v1/vector_stores/{store['id']}/files",
        headers=AUTH,
        json={"file_id": file["id"], "attributes": {"topic": "pets", "year": 2024}},
    )
    assert attach.status_code == 200
    for _ in range(200):
        got = await http.get(f"/v1/vector_stores/{store['id']}/files/{file['id']}", headers=AUTH)
        if got.json()["status"] != "in_progress":
            break
        await asyncio.sleep(0.02)
    assert got.json()["status"] == "completed", got.json()
    return str(store["id"])


@pytest.mark.parametrize(
    ("filters", "code"),
    [
        ({"type": "eq", "key": "colour", "value": "red"}, "unknown_attribute"),
        (
            {"type": "and", "filters": [{"type": "eq", "key": "nope", "value": 1}]},
            "unknown_attribute",
        ),
        ({"type": "gt", "key": "topic", "value": 3}, "invalid_filter"),
        ({"type": "eq", "key": "year", "value": "2024"}, "invalid_filter"),
        ({"type": "in", "key": "topic", "value": "pets"}, "invalid_filter"),
    ],
)
async def test_filters_on_unknown_attributes_or_wrong_types_are_400(
    settings: Settings, filters: dict[str, Any], code: str
) -> None:
    async with app_client(settings) as http:
        store = await _ready_store(http)
        response = await http.post(
            f"/v1/vector_stores/{store}/search",
            headers=AUTH,
            json={"query": "cats", "filters": filters},
        )
        assert envelope(response, 400, code)["param"] == "filters"


@pytest.mark.parametrize(
    "filters",
    [
        {"type": "xor", "filters": []},
        {"type": "or", "filters": []},
        {"type": "eq", "key": "topic"},
        {"type": "eq", "key": "topic", "value": {"nested": 1}},
    ],
)
async def test_filters_outside_the_schema_are_422(
    settings: Settings, filters: dict[str, Any]
) -> None:
    async with app_client(settings) as http:
        store = (await http.post("/v1/vector_stores", headers=AUTH, json={})).json()["id"]
        response = await http.post(
            f"/v1/vector_stores/{store}/search",
            headers=AUTH,
            json={"query": "cats", "filters": filters},
        )
        assert envelope(response, 422)["param"].startswith("filters")


async def test_search_bounds(settings: Settings) -> None:
    async with app_client(settings) as http:
        store = await _ready_store(http)
        url = f"/v1/vector_stores/{store}/search"
        envelope(
            await http.post(url, headers=AUTH, json={"query": "x", "max_num_results": 51}), 400
        )
        envelope(await http.post(url, headers=AUTH, json={"query": "  "}), 400)
        envelope(await http.post(url, headers=AUTH, json={"query": []}), 422)
        attributes = {"attributes": {"year": "recent"}, "file_id": "file-x"}
        envelope(
            await http.post(f"/v1/vector_stores/{store}/files", headers=AUTH, json=attributes), 400
        )


async def test_a_wrong_dimension_vector_is_refused_and_writes_nothing(settings: Settings) -> None:
    """A store whose vectors came from another model (an ``aiservice ingest`` of
    precomputed 3-dimensional vectors): text queries and attached files do not fit it."""
    async with app_client(settings) as http:
        vectors = http._transport.app.state.aiservice.vectors  # type: ignore[attr-defined]
        store = (await http.post("/v1/vector_stores", headers=AUTH, json={})).json()["id"]
        await vectors.indexer.write(
            store, [Point("00000000-0000-0000-0000-000000000001", [1.0, 0, 0])], "t"
        )
        search = await http.post(
            f"/v1/vector_stores/{store}/search", headers=AUTH, json={"query": "cats"}
        )
        envelope(search, 400, "dimension_mismatch")
        file = (await upload(http, b"Cats purr.")).json()
        await http.post(
            f"/v1/vector_stores/{store}/files", headers=AUTH, json={"file_id": file["id"]}
        )
        for _ in range(200):
            got = (
                await http.get(f"/v1/vector_stores/{store}/files/{file['id']}", headers=AUTH)
            ).json()
            if got["status"] != "in_progress":
                break
            await asyncio.sleep(0.02)
        assert got["status"] == "failed" and got["last_error"]["code"] == "invalid_file"
        assert "dimension" in got["last_error"]["message"]
        assert await vectors.backend.count(vectors.collection(store)) == 1
        with pytest.raises(Exception, match="dimension"):
            await vectors.indexer.write(
                store, [Point("00000000-0000-0000-0000-000000000002", [1.0])], "t"
            )
        assert await vectors.backend.count(vectors.collection(store)) == 1


async def test_a_file_that_is_not_text_fails_with_invalid_file(settings: Settings) -> None:
    async with app_client(settings) as http:
        store = (await http.post("/v1/vector_stores", headers=AUTH, json={})).json()["id"]
        file = (await upload(http, b"\xff\xfe\x00binary", "blob.bin")).json()
        await http.post(
            f"/v1/vector_stores/{store}/files", headers=AUTH, json={"file_id": file["id"]}
        )
        for _ in range(200):
            got = (
                await http.get(f"/v1/vector_stores/{store}/files/{file['id']}", headers=AUTH)
            ).json()
            if got["status"] != "in_progress":
                break
            await asyncio.sleep(0.02)
        assert got["status"] == "failed" and got["last_error"]["code"] == "invalid_file"


async def test_routes_are_404_when_vector_stores_are_off(make_settings: MakeSettings) -> None:
    async with app_client(make_settings({})) as http:
        response = await http.get("/v1/vector_stores")
        envelope(response, 404, "vector_stores_not_configured")


def test_nothing_of_qdrant_is_imported_unless_configured() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from aiservice import create_app, Settings; create_app(Settings());"
        "print(sorted(m for m in sys.modules if m.startswith(('qdrant_client', 'numpy'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

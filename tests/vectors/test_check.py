"""``aiservice check`` with vector stores: the backend answers and its collections'
metadata reads; offline, the backend is not contacted at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiservice.preflight import run_checks

from ..conftest import MakeSettings, app_client
from .test_vector_stores_sdk import DOCS, sdk


def _rows(rows: list[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    return {name: (status, detail) for name, status, detail in rows}


async def test_online_check_reads_the_metadata_of_every_store(
    make_settings: MakeSettings, vector_config: dict[str, Any], tmp_path: Path
) -> None:
    if "url" not in vector_config["vectors"]:  # embedded: the data must outlive the app
        vector_config["vectors"]["location"] = str(tmp_path / "qdrant")
    settings = make_settings(vector_config)
    async with app_client(settings) as http:
        client = sdk(http)
        store = await client.vector_stores.create(name="checked")
        f = await client.files.create(
            file=("paris.txt", DOCS["paris.txt"].encode()), purpose="assistants"
        )
        done = await client.vector_stores.files.create_and_poll(
            vector_store_id=store.id, file_id=f.id, poll_interval_ms=20
        )
        assert done.status == "completed"

    rows = _rows(await run_checks(settings, timeout=10))
    status, detail = rows["vectors qdrant"]
    assert status == "ok", detail
    assert "3 records, 1 stores" in detail  # the file, the store, the attached file
    assert "vectors" not in rows  # the readiness row is replaced by the stricter one
    assert "queue" not in rows  # in-process indexing: no queue to ask


async def test_offline_check_skips_the_backend(
    make_settings: MakeSettings, vector_config: dict[str, Any], tmp_path: Path, monkeypatch: Any
) -> None:
    from aiservice.vectors.meta import MetaStore

    if "url" not in vector_config["vectors"]:
        vector_config["vectors"]["location"] = str(tmp_path / "qdrant")
    touched: list[str] = []

    async def ensure(self: Any) -> None:
        touched.append(self.collection)

    monkeypatch.setattr(MetaStore, "ensure", ensure)
    rows = _rows(await run_checks(make_settings(vector_config), offline=True, timeout=3))
    assert rows["vectors qdrant"] == ("skipped", "offline")
    assert all(status != "fail" for status, _ in rows.values()), rows
    assert touched == []  # no metadata collection created at startup either

"""The official ``openai`` SDK, unmodified, against /v1/files and /v1/vector_stores: the
passage that answers a query comes back first (embeddings from the loopback upstream,
vectors in Qdrant)."""

from __future__ import annotations

from typing import Any

import pytest
from openai import AsyncOpenAI, NotFoundError

from aiservice import Settings

from ..conftest import MakeSettings, app_client
from .conftest import ADMIN_KEY, CLIENT_KEY, OTHER_KEY

DOCS = {
    "paris.txt": (
        "The Eiffel Tower stands in Paris on the Champ de Mars. Gustave Eiffel's company "
        "built the wrought-iron tower, and it was completed in 1889 for the World's Fair."
    ),
    "rivers.md": (
        "# Rivers\nThe Nile flows north through eleven countries into the Mediterranean.\n\n"
        "# Deserts\nThe Sahara is the largest hot desert, covering most of North Africa."
    ),
    "python.txt": (
        "Python is a programming language created by Guido van Rossum. Its first release "
        "appeared in 1991, and indentation delimits its blocks."
    ),
}


def metric(text: str, name: str) -> float:
    """The value of sample ``name`` (with its labels) in a Prometheus exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def sdk(http: Any, key: str = CLIENT_KEY) -> AsyncOpenAI:
    return AsyncOpenAI(
        base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0
    )


@pytest.fixture
def settings(make_settings: MakeSettings, vector_config: dict[str, Any]) -> Settings:
    return make_settings(vector_config)


async def test_upload_attach_poll_then_search_finds_the_answer_first(settings: Settings) -> None:
    async with app_client(settings) as http:
        before = (await http.get("/metrics")).text
        client = sdk(http)
        store = await client.vector_stores.create(name="facts")
        assert store.object == "vector_store" and store.name == "facts"
        for name, text in DOCS.items():
            uploaded = await client.files.create(file=(name, text.encode()), purpose="assistants")
            assert uploaded.bytes == len(text.encode()) and uploaded.filename == name
            attached = await client.vector_stores.files.create_and_poll(
                vector_store_id=store.id,
                file_id=uploaded.id,
                attributes={"topic": name.split(".")[0], "year": 2024},
                poll_interval_ms=20,
            )
            assert attached.status == "completed", attached.last_error
        # upload_and_poll: upload and attach in one SDK call
        extra = await client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id,
            file=("tea.txt", b"Green tea and black tea come from the same plant."),
            poll_interval_ms=20,
        )
        assert extra.status == "completed"

        page = await client.vector_stores.search(
            vector_store_id=store.id, query="When was the Eiffel Tower completed?"
        )
        assert page.data[0].filename == "paris.txt"
        assert "1889" in page.data[0].content[0].text
        assert page.data[0].attributes == {"topic": "paris", "year": 2024}
        assert page.data[0].score > page.data[-1].score

        deserts = await client.vector_stores.search(
            vector_store_id=store.id, query="largest hot desert", max_num_results=1
        )
        assert len(deserts.data) == 1
        assert deserts.data[0].content[0].text.startswith("# Deserts")  # Markdown section

        stored = await client.vector_stores.retrieve(store.id)
        assert stored.file_counts.completed == 4 and stored.file_counts.total == 4
        assert stored.status == "completed" and stored.usage_bytes > 0
        files = await client.vector_stores.files.list(vector_store_id=store.id)
        assert len(files.data) == 4

        after = (await http.get("/metrics")).text
        upserted = 'aiservice_vectors_upserted_total{source="attach"}'
        # A chunk per file, two for rivers.md (two Markdown sections).
        assert metric(after, upserted) - metric(before, upserted) == 5
        searches = "aiservice_vector_search_duration_seconds_count"
        assert metric(after, searches) - metric(before, searches) == 2


async def test_filters_threshold_and_detach(settings: Settings) -> None:
    async with app_client(settings) as http:
        client = sdk(http)
        store = await client.vector_stores.create(name="filtered")
        ids = {}
        for year, (name, text) in enumerate(DOCS.items(), start=2020):
            f = await client.files.create(file=(name, text.encode()), purpose="user_data")
            await client.vector_stores.files.create_and_poll(
                vector_store_id=store.id,
                file_id=f.id,
                attributes={"topic": name.split(".")[0], "year": year},
                poll_interval_ms=20,
            )
            ids[name] = f.id
        query = "Eiffel Tower completed"
        only_python = await client.vector_stores.search(
            vector_store_id=store.id,
            query=query,
            filters={"type": "eq", "key": "topic", "value": "python"},
        )
        assert {r.filename for r in only_python.data} == {"python.txt"}
        recent = await client.vector_stores.search(
            vector_store_id=store.id,
            query=query,
            filters={
                "type": "or",
                "filters": [
                    {"type": "gte", "key": "year", "value": 2022},
                    {"type": "eq", "key": "filename", "value": "paris.txt"},
                ],
            },
        )
        assert {r.filename for r in recent.data} == {"paris.txt", "python.txt"}
        strict = await client.vector_stores.search(
            vector_store_id=store.id, query=query, ranking_options={"score_threshold": 0.3}
        )
        assert [r.filename for r in strict.data] == ["paris.txt"]

        await client.vector_stores.files.delete(file_id=ids["paris.txt"], vector_store_id=store.id)
        after = await client.vector_stores.search(vector_store_id=store.id, query=query)
        assert "paris.txt" not in {r.filename for r in after.data}
        deleted = await client.vector_stores.delete(store.id)
        assert deleted.deleted
        with pytest.raises(NotFoundError):
            await client.vector_stores.retrieve(store.id)
        gone = await client.files.delete(ids["rivers.md"])
        assert gone.deleted
        with pytest.raises(NotFoundError):
            await client.files.retrieve(ids["rivers.md"])


async def test_a_store_is_visible_only_to_the_key_that_created_it(settings: Settings) -> None:
    async with app_client(settings) as http:
        owner, other, admin = sdk(http), sdk(http, OTHER_KEY), sdk(http, ADMIN_KEY)
        store = await owner.vector_stores.create(name="mine")
        f = await owner.files.create(file=("a.txt", b"alpha"), purpose="assistants")
        with pytest.raises(NotFoundError):
            await other.vector_stores.retrieve(store.id)
        with pytest.raises(NotFoundError):
            await other.vector_stores.search(vector_store_id=store.id, query="alpha")
        with pytest.raises(NotFoundError):
            await other.files.retrieve(f.id)
        assert store.id not in {s.id for s in (await other.vector_stores.list()).data}
        assert store.id in {s.id for s in (await owner.vector_stores.list()).data}
        assert (await admin.vector_stores.retrieve(store.id)).id == store.id


async def test_indexing_and_search_tokens_count_as_the_calling_keys_usage(
    settings: Settings,
) -> None:
    """Embedding a file in the background and a search query are usage of the key that
    attached the file / searched (budgets and per-key token limits see them)."""
    from aiservice.llm.accounting import UsageRecord

    usage: list[UsageRecord] = []

    async def listen(record: UsageRecord) -> None:
        usage.append(record)

    async with app_client(settings) as http:
        runtime = http._transport.app.state.aiservice  # type: ignore[attr-defined]
        runtime.gateway.accountant.listeners.append(listen)
        owner, other = sdk(http), sdk(http, OTHER_KEY)
        store = await owner.vector_stores.create(name="usage")
        text = b"Usage accounting: the ledger of tokens for this one key."
        f = await owner.files.create(file=("ledger.txt", text), purpose="assistants")
        attached = await owner.vector_stores.files.create_and_poll(
            vector_store_id=store.id, file_id=f.id, poll_interval_ms=20
        )
        assert attached.status == "completed", attached.last_error
        indexing = [(r.kind, r.principal and r.principal.name) for r in usage]
        assert indexing and set(indexing) == {("embeddings", "key-0")}, indexing
        theirs = await other.vector_stores.create(name="the other key's")
        mine = await other.files.create(file=("theirs.txt", text), purpose="assistants")
        await other.vector_stores.files.create_and_poll(
            vector_store_id=theirs.id, file_id=mine.id, poll_interval_ms=20
        )
        usage.clear()
        await other.vector_stores.search(vector_store_id=theirs.id, query="whose ledger")
    assert [(r.kind, r.principal and r.principal.name) for r in usage] == [("embeddings", "key-1")]
    assert usage[0].input_tokens > 0


async def test_a_search_on_an_empty_store_embeds_no_query(settings: Settings) -> None:
    """No file, or every file detached: the empty page, without an embedding call (no
    upstream request, no tokens charged); bad input is still refused."""
    from aiservice.llm.accounting import UsageRecord

    usage: list[UsageRecord] = []

    async def listen(record: UsageRecord) -> None:
        usage.append(record)

    async with app_client(settings) as http:
        runtime = http._transport.app.state.aiservice  # type: ignore[attr-defined]
        runtime.gateway.accountant.listeners.append(listen)
        client = sdk(http)
        store = await client.vector_stores.create(name="empty")
        fresh = await client.vector_stores.search(vector_store_id=store.id, query="anything")
        refused = await http.post(
            f"/v1/vector_stores/{store.id}/search",
            json={"query": "anything", "max_num_results": 0},
            headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        )
        assert (fresh.data, usage) == ([], [])
        assert refused.status_code == 422

        text = DOCS["paris.txt"].encode()
        f = await client.files.create(file=("paris.txt", text), purpose="assistants")
        await client.vector_stores.files.create_and_poll(
            vector_store_id=store.id, file_id=f.id, poll_interval_ms=20
        )
        usage.clear()
        found = await client.vector_stores.search(vector_store_id=store.id, query="Eiffel")
        assert [r.filename for r in found.data] == ["paris.txt"]
        assert [r.kind for r in usage] == ["embeddings"]

        await client.vector_stores.files.delete(file_id=f.id, vector_store_id=store.id)
        usage.clear()
        emptied = await client.vector_stores.search(vector_store_id=store.id, query="Eiffel")
    assert (emptied.data, usage) == ([], [])


async def test_sharing_all_lets_every_key_in(
    make_settings: MakeSettings, vector_config: dict[str, Any]
) -> None:
    vector_config["vectors"]["sharing"] = "all"
    async with app_client(make_settings(vector_config)) as http:
        store = await sdk(http).vector_stores.create(name="everyone's")
        assert (await sdk(http, OTHER_KEY).vector_stores.retrieve(store.id)).id == store.id


async def test_a_store_created_with_file_ids_indexes_them(settings: Settings) -> None:
    async with app_client(settings) as http:
        client = sdk(http)
        f = await client.files.create(
            file=("paris.txt", DOCS["paris.txt"].encode()), purpose="assistants"
        )
        store = await client.vector_stores.create(
            name="at-once",
            file_ids=[f.id],
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20},
            },
        )
        assert store.file_counts.total == 1
        attached = await client.vector_stores.files.poll(
            f.id, vector_store_id=store.id, poll_interval_ms=20
        )
        assert attached.status == "completed"
        assert attached.chunking_strategy is not None
        assert attached.chunking_strategy.static.max_chunk_size_tokens == 100  # type: ignore[union-attr]
        page = await client.vector_stores.search(vector_store_id=store.id, query="Eiffel 1889")
        assert "1889" in " ".join(r.content[0].text for r in page.data)


async def test_files_left_in_progress_are_indexed_when_the_service_starts_again(
    make_settings: MakeSettings, vector_config: dict[str, Any], tmp_path: Any
) -> None:
    if "url" not in vector_config["vectors"]:  # embedded: the data must outlive the app
        vector_config["vectors"]["location"] = str(tmp_path / "qdrant")
    settings = make_settings(vector_config)
    async with app_client(settings) as http:
        client = sdk(http)
        store = await client.vector_stores.create(name="interrupted")
        f = await client.files.create(
            file=("paris.txt", DOCS["paris.txt"].encode()), purpose="assistants"
        )
        vectors = http._transport.app.state.aiservice.vectors  # type: ignore[attr-defined]
        vectors.submit = lambda work: work.close()  # the process "stops" before indexing
        attached = await client.vector_stores.files.create(vector_store_id=store.id, file_id=f.id)
        assert attached.status == "in_progress"
    async with app_client(settings) as http:
        client = sdk(http)
        done = await client.vector_stores.files.poll(
            f.id, vector_store_id=store.id, poll_interval_ms=20
        )
        assert done.status == "completed"
        page = await client.vector_stores.search(vector_store_id=store.id, query="Eiffel Tower")
        assert page.data[0].filename == "paris.txt"

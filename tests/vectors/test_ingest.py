"""``aiservice ingest``: a real subprocess killed with SIGKILL resumes without duplicates;
folders of text files; bad records stop the run naming them; ``aiservice search``."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiservice import Settings
from aiservice.vectors.qdrant import QdrantBackend

REPO = Path(__file__).resolve().parents[2]
RECORDS = 10_000
DIM = 32


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISERVICE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def _config(tmp_path: Path, **vectors: Any) -> Path:
    path = tmp_path / "aiservice.yaml"
    data = {"vectors": {"backend": "qdrant", "location": str(tmp_path / "qdrant"), **vectors}}
    path.write_text(yaml.safe_dump(data))
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "aiservice", *args]


def _write_records(path: Path, n: int = RECORDS) -> None:
    rng = random.Random(7)
    with path.open("w") as out:
        for i in range(n):
            vector = [round(rng.uniform(-1, 1), 4) for _ in range(DIM)]
            record = {"id": f"doc-{i}", "vector": vector, "metadata": {"n": i}}
            out.write(json.dumps(record) + "\n")


async def _count(tmp_path: Path, store: str) -> int:
    settings = Settings(vectors={"backend": "qdrant", "location": str(tmp_path / "qdrant")})
    backend = QdrantBackend(settings)
    try:
        return await backend.count(f"aiservice_{store}")
    finally:
        await backend.aclose()


async def test_sigkill_then_rerun_resumes_without_duplicates(tmp_path: Path) -> None:
    source = tmp_path / "vectors.jsonl"
    _write_records(source)
    checkpoint = tmp_path / "vectors.jsonl.checkpoint.json"
    argv = _cli(
        "ingest", str(source), "--store", "vs_migrated", "-c", str(_config(tmp_path)),
        "--batch-size", "250", "--concurrency", "3",
    )  # fmt: skip
    first = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done = 0
    while done < 1500:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "no progress"
        if checkpoint.exists():
            done = json.loads(checkpoint.read_text())["done"]
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    _, progress_bar = first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    killed_at = json.loads(checkpoint.read_text())["done"]
    assert 1500 <= killed_at < RECORDS
    assert b"#" in progress_bar  # the progress bar was drawn
    written = await _count(tmp_path, "vs_migrated")
    assert written >= killed_at  # batches after the checkpoint may be partly written

    second = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"resumed after {killed_at}" in second.stdout
    assert json.loads(checkpoint.read_text())["done"] == RECORDS
    assert await _count(tmp_path, "vs_migrated") == RECORDS

    # A third run starts where the second ended: nothing left, nothing written twice.
    third = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and "0 vectors written" in third.stdout
    assert await _count(tmp_path, "vs_migrated") == RECORDS


def test_a_folder_is_chunked_and_searchable(tmp_path: Path, embeddings_url: str) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "tower.md").write_text("# Eiffel Tower\nCompleted in 1889 in Paris.\n")
    (docs / "sub" / "nile.txt").write_text("The Nile flows north into the Mediterranean.")
    (docs / "ignored.bin").write_bytes(b"\x00\x01")
    config = tmp_path / "aiservice.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "providers": {
                    "bow": {
                        "type": "openai",
                        "base_url": embeddings_url + "/v1",
                        "api_key": "sk-loopback-embeddings-0001",
                    }
                },
                "models": {"embed": [{"provider": "bow", "model": "bow-256"}]},
                "vectors": {
                    "backend": "qdrant",
                    "location": str(tmp_path / "qdrant"),
                    "embedding_model": "embed",
                },
            }
        )
    )
    ingest = subprocess.run(
        _cli("ingest", str(docs), "--store", "vs_docs", "-c", str(config), "--quiet"),
        env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr
    assert "ingested 2/2 items" in ingest.stdout
    search = subprocess.run(
        _cli("search", "--store", "vs_docs", "-c", str(config), "When was the tower completed?",
             "--json"),
        env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert search.returncode == 0, search.stderr
    page = json.loads(search.stdout)
    assert page["object"] == "vector_store.search_results.page"
    assert page["data"][0]["filename"] == "tower.md"
    assert "1889" in page["data"][0]["content"][0]["text"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": 1, "vector": [1, 2]}', '{"id": 2, "vector": [1, 2, 3]}'], "dimensions"),
        (['{"id": 1, "vector": [1, 2]}', "not json"], ":2: invalid record"),
        (['{"id": 1}'], "needs 'text' or 'vector'"),
        (['{"id": 1, "text": "needs a model"}'], "embedding_model"),
    ],
)
async def test_bad_records_stop_the_run_naming_them(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text("\n".join(lines) + "\n")
    run = subprocess.run(
        _cli("ingest", str(source), "--store", "vs_bad", "-c", str(_config(tmp_path)),
             "--batch-size", "1", "--concurrency", "1", "--quiet"),
        env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert message in run.stderr

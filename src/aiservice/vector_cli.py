"""``aiservice ingest`` and ``aiservice search``: bulk import into a vector store and recall
spot checks from the command line (registered through ``cli.EXTRA_COMMANDS``).

Both open the configured vector backend directly (``vectors``), so an embedded Qdrant on
disk must not be open in a running service at the same time (Qdrant locks the directory).
Texts are embedded through the gateway built from the same configuration, with
``vectors.embedding_model``; precomputed vectors need no model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings
    from .vectors.ingest import Progress
    from .vectors.service import Embed, VectorStores

__all__ = ["register"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="YAML config file (default: ./aiservice.yaml)")
    parser.add_argument("-p", "--profile", help="profile overlay config/NAME.yaml")
    parser.add_argument("--store", required=True, help="vector store id (vs_...)")


def register(sub: Any) -> None:
    ingest = sub.add_parser("ingest", help="bulk import a folder or a JSONL into a vector store")
    _common(ingest)
    ingest.add_argument("source", type=Path, help="folder of .txt/.md files, or a .jsonl file")
    ingest.add_argument("--name", help="name of the store when it is created")
    ingest.add_argument("--owner", help="API key name owning a created store (auth config)")
    ingest.add_argument("--batch-size", type=int, default=256, help="items per batch (256)")
    ingest.add_argument("--concurrency", type=int, default=4, help="batches at once (4)")
    ingest.add_argument("--retries", type=int, default=3, help="retries per batch (3)")
    ingest.add_argument("--checkpoint", type=Path, help="default: SOURCE.checkpoint.json")
    ingest.add_argument("--restart", action="store_true", help="ignore the checkpoint")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.set_defaults(func=cmd_ingest)

    search = sub.add_parser("search", help="query a vector store (recall spot checks)")
    _common(search)
    search.add_argument("query", help="text to search for")
    search.add_argument("-k", type=int, default=5, help="results (5)")
    search.add_argument("--filter", help="OpenAI filters object, as JSON")
    search.add_argument("--json", action="store_true", help="the search_results page as JSON")
    search.set_defaults(func=cmd_search)


@asynccontextmanager
async def _service(settings: Settings, need_embed: bool) -> AsyncIterator[VectorStores]:
    from .errors import ConfigError
    from .secrets.base import SecretResolver
    from .vectors.base import BACKENDS
    from .vectors.blobs import build_blobs
    from .vectors.service import VectorStores

    cfg = settings.vectors
    if cfg.backend is None:
        raise ConfigError("vectors.backend is not set", key="vectors.backend")
    secrets = SecretResolver(settings)
    backend = BACKENDS.get(cfg.backend)(settings, secrets)
    gateway = None
    embed: Embed | None = None
    if need_embed and cfg.embedding_model:
        from .llm.build import build_gateway

        gateway = await build_gateway(settings, secrets)
        model = cfg.embedding_model

        async def embed(texts: list[str], owner: str | None = None) -> list[list[float]]:
            assert gateway is not None
            return (await gateway.embed(model, texts)).vectors

    async def no_embed(texts: list[str], owner: str | None = None) -> list[list[float]]:
        raise ConfigError("texts need vectors.embedding_model", key="vectors.embedding_model")

    def no_submit(work: Any) -> None:
        work.close()

    service = VectorStores(cfg, backend, build_blobs(cfg.files), embed or no_embed, no_submit)
    try:
        await service.meta.ensure()
        yield service
    finally:
        await backend.aclose()
        if gateway is not None:
            await gateway.aclose()


def _bar(progress: Progress) -> None:
    share = progress.done / progress.total if progress.total else 1.0
    filled = int(share * 30)
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (30 - filled)}] {progress.done}/{progress.total} items "
        f"{share:6.1%}  {progress.rate:,.0f}/s  {progress.points} vectors"
    )
    sys.stderr.flush()


def _silent(_: Progress) -> None:
    return None


async def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from .security.apikeys import Principal
    from .vectors.ingest import IngestOptions, ingest

    source: Path = args.source
    if not source.exists():
        print(f"aiservice ingest: {source} does not exist", file=sys.stderr)
        return 2
    checkpoint = args.checkpoint or source.with_name(source.name + ".checkpoint.json")
    options = IngestOptions(
        batch_size=max(1, args.batch_size),
        concurrency=max(1, args.concurrency),
        retries=max(0, args.retries),
        checkpoint=checkpoint,
        restart=args.restart,
    )
    async with _service(settings, need_embed=True) as service:
        if not await service.store_exists(args.store):
            owner = Principal(args.owner) if args.owner else None
            await service.create_store(owner, args.name, store_id=args.store)
        embed = service.embed if settings.vectors.embedding_model else None
        report = _silent if args.quiet else _bar
        progress = await ingest(service, args.store, source, embed, options, report)
    if not args.quiet:
        sys.stderr.write("\n")
    resumed = f", resumed after {progress.skipped}" if progress.skipped else ""
    print(
        f"ingested {progress.done}/{progress.total} items into {args.store}{resumed}: "
        f"{progress.points} vectors written, {progress.rate:,.0f} items/s"
    )
    return 0


async def _search(args: argparse.Namespace, settings: Settings) -> int:
    filters = json.loads(args.filter) if args.filter else None
    async with _service(settings, need_embed=True) as service:
        page = await service.search(args.store, None, args.query, args.k, filters)
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    for rank, hit in enumerate(page["data"], start=1):
        text = " ".join(hit["content"][0]["text"].split())[:100]
        print(f"{rank:>3}  {hit['score']:.4f}  {hit['filename']}  {text}")
    return 0


def _run(coro_fn: Any, args: argparse.Namespace) -> int:
    from .config.loader import settings_from_args
    from .errors import AIServiceError
    from .registry import PluginImportError, PluginNotFoundError
    from .vectors.ingest import IngestError

    settings = settings_from_args(args)
    try:
        code: int = asyncio.run(coro_fn(args, settings))
    except (IngestError, AIServiceError, PluginImportError, PluginNotFoundError) as exc:
        message = exc.message if isinstance(exc, AIServiceError) else str(exc)
        print(f"\naiservice {args.command}: {message}", file=sys.stderr)
        return 2
    return code


def cmd_ingest(args: argparse.Namespace) -> int:
    return _run(_ingest, args)


def cmd_search(args: argparse.Namespace) -> int:
    return _run(_search, args)

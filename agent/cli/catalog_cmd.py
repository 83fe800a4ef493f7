"""``store-agent catalog build|search --config C``: (re)build the product index and query it from the shell.

The catalogue folder and cache come from ``pipelines.product`` in the store
config, so the CLI and the running agent share one embedding cache: a build
here means the agent starts without embedding anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.cli import EXIT_DATA, add_config_option
from agent.cli.progress import Progress

if TYPE_CHECKING:
    from agent.catalog import BuiltCatalog
    from agent.config.schema import StoreConfig
    from models.product import ProductEmbedder


def register(sub: Any) -> None:
    parser = sub.add_parser("catalog", help="build or search the product catalogue index")
    commands = parser.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)
    build = commands.add_parser("build", help="embed new reference photos and report the catalogue")
    add_config_option(build)
    build.add_argument("--quiet", action="store_true", help="no progress (a bar on a terminal, a few lines otherwise)")
    build.set_defaults(func=run_build)
    search = commands.add_parser("search", help="print the best SKUs for each image, one JSON line per image")
    add_config_option(search)
    search.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="photos of products")
    search.add_argument("--top", type=int, default=5, help="how many SKUs to list (default 5)")
    search.set_defaults(func=run_search)


def _load(config_path: Path, progress: bool) -> tuple[ProductEmbedder, BuiltCatalog]:
    from agent.catalog import build_index
    from agent.config.loader import load_config
    from agent.pipelines.product.settings import ProductSettings
    from models.product import ProductEmbedder
    from models.runtime import set_memory_arena

    config: StoreConfig = load_config(config_path).config
    settings = config.pipelines.settings(ProductSettings)
    set_memory_arena(config.models.memory_arena)
    embedder = ProductEmbedder.load(
        Path(config.models.directory),
        config.models.providers,
        config.models.threads,
        views=settings.views,
        centre_crop=settings.centre_crop,
        input_size=settings.input_size,
    )
    cache_dir = Path(settings.cache_dir or Path(config.storage.state_dir) / "catalog")

    bar: Progress | None = None

    def report(done: int, total: int, path: Path | None) -> None:
        nonlocal bar
        if bar is None and total:
            bar = Progress("embedding new photos", total, unit="photos")
        if bar is not None and path is not None:
            bar.update(done, detail=f"{path.parent.name}/{path.name}")

    built = build_index(
        Path(settings.catalog_dir), cache_dir, embedder, report if progress else None, whiten=settings.whitening
    )
    if bar is not None:
        bar.finish(f"{built.stats.embedded} embedded, {built.stats.cached} taken from the cache")
    return embedder, built


def run_build(args: argparse.Namespace) -> int:
    from agent.catalog import CatalogError

    try:
        _, built = _load(args.config, progress=not args.quiet)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATA
    s = built.stats
    print(
        f"catalogue {built.catalog.root}: {len(built.catalog.products)} SKUs, {s.photos} photos "
        f"({s.embedded} embedded, {s.cached} from cache) in {s.seconds:.1f} s"
    )
    return 0


def run_search(args: argparse.Namespace) -> int:
    from agent.catalog import CatalogError, read_image

    if args.top < 1:
        print("error: --top must be at least 1", file=sys.stderr)
        return 2
    try:
        embedder, built = _load(args.config, progress=False)
        images = [read_image(path) for path in args.images]
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATA
    results = built.index.search(embedder.embed(images), args.top)
    for path, result in zip(args.images, results, strict=True):
        top = [{"sku": m.sku, "score": round(m.score, 4)} for m in result.top]
        print(json.dumps({"image": str(path), "top": top}, ensure_ascii=False))
    return 0

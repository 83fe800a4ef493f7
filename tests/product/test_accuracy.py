"""Recognition accuracy on real photos, with the shipped defaults (384 input, centre 0.7, 16 copies per reference).

Two protocols (bench/product_accuracy.py prints both, with the figures in docs/product.md):

- session split (the one that counts): catalogue = studio photo + 5 photos from the
  GroceryStoreDataset's *train* visits per SKU; queries = the shared shelf photos, which are half of
  its separately shot *test* split. Nothing was tuned on these queries: settings and thresholds were
  chosen on the train/val visits. Needs ``media/products/train/<sku>/`` in the shared data (skipped
  with the reason otherwise);
- within-session (shared data only): catalogue = studio + the first 5 shelf photos, queries = the
  other shelf photos of the same visits. It flatters every setting; kept as a regression floor.

Floors are the measured figures minus a small margin (one-sided: an improvement passes). Queries and
references are always disjoint; whitening is fitted on reference photos only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.catalog import BuiltCatalog, CatalogIndex, SearchResult, build_index, index_from_copies, read_image
from agent.catalog.build import EmbeddingCache, file_sha256
from models.product import ProductEmbedder
from tests.conftest import data_dir
from tests.product.conftest import all_skus, make_catalog

pytestmark = pytest.mark.slow

SHELF_REFS = 5  # shelf photos per SKU added as references (fewer where a SKU has only a few)
FOLDS = 6  # unknown products: every 6th SKU left out of the catalogue in turn
#: min_score / min_margin / min_cosine recommended for pipelines.product (docs/product.md): chosen on the tuning
#: part of the session split to accept no more unknown photos than the previous pipeline did there (0.25).
#: The agent's defaults are still 0.7 / 0.04 / 0.5 until its settings change; then use ProductPipeline() here.
THRESHOLDS = (0.8, 0.04, 0.5)
TRAIN = "media/products/train"


def shelf_photos(products_dir: Path, sku: str) -> list[Path]:
    return sorted((products_dir / "shelf" / sku).glob("*.jpg"))


def within_session_split(products_dir: Path, sku: str) -> tuple[list[Path], list[Path]]:
    photos = shelf_photos(products_dir, sku)
    n = min(SHELF_REFS, len(photos) - 1)
    return photos[:n], photos[n:]


@pytest.fixture(scope="module")
def train_photos() -> Path:
    """Skips before any embedding is done when the train-visit photos are absent."""
    folder = data_dir() / TRAIN
    if not folder.is_dir():
        pytest.skip(
            f"{folder} not found: the session-split test needs the first 5 train-split photos of each of the 31 "
            "SKUs from the GroceryStoreDataset (MIT; dataset/train/Packages/*/<sku>/, 155 files, 3.8 MB) "
            "in media/products/train/<sku>/"
        )
    return folder


@pytest.fixture(scope="module")
def queries(products_dir: Path, embedder: ProductEmbedder) -> dict[Path, np.ndarray]:
    paths = [p for sku in all_skus(products_dir) for p in shelf_photos(products_dir, sku)]
    vectors = embedder.embed([read_image(p) for p in paths])
    return dict(zip(paths, vectors, strict=True))


def top_k_rates(
    index: CatalogIndex, items: list[tuple[Path, str]], queries: dict[Path, np.ndarray]
) -> tuple[float, float]:
    results = index.search(np.stack([queries[p] for p, _ in items]), top=5)
    top1 = np.mean([r.top[0].sku == sku for r, (_, sku) in zip(results, items, strict=True)])
    top5 = np.mean([sku in {m.sku for m in r.top} for r, (_, sku) in zip(results, items, strict=True)])
    return float(top1), float(top5)


def open_set_rates(
    built: BuiltCatalog,
    cache_dir: Path,
    embedder: ProductEmbedder,
    items: list[tuple[Path, str]],
    queries: dict[Path, np.ndarray],
) -> tuple[float, float, float]:
    """(known accepted, precision, unknown accepted) at :data:`THRESHOLDS`, per photo.

    Unknowns: each of 6 folds of SKUs is left out of the catalogue in turn (whitening refitted from the
    remaining photos' copies, as a build without them would do) and its photos are searched.
    """

    def accepted(result: SearchResult) -> str | None:
        match = result.accepted(*THRESHOLDS)
        return None if match is None else match.sku

    index = built.index
    known = [accepted(r) for r in index.search(np.stack([queries[p] for p, _ in items]), top=5)]
    n_known = sum(k is not None for k in known)
    right = sum(k == sku for k, (_, sku) in zip(known, items, strict=True))
    # The copies of every reference photo, from the build's cache, in the index's row order.
    photos = [(p.sku, photo) for p in built.catalog.products.values() for photo in p.photos]
    cache = EmbeddingCache(cache_dir, embedder.reference_version)
    copies = np.stack([cache.vectors[file_sha256(photo)] for _, photo in photos]).astype(np.float32)
    skus = sorted({s for s, _ in photos})
    unknown_n = unknown_accepted = 0
    for f in range(FOLDS):
        out = set(skus[f::FOLDS])
        keep = [i for i, (s, _) in enumerate(photos) if s not in out]
        partial = index_from_copies(copies[keep], [photos[i][0] for i in keep], whiten=True)
        held = [queries[p] for p, sku in items if sku in out]
        for result in partial.search(np.stack(held), top=5):
            unknown_n += 1
            unknown_accepted += accepted(result) is not None
    return n_known / len(items), right / max(1, n_known), unknown_accepted / unknown_n


@pytest.fixture(scope="module")
def within_session(
    tmp_path_factory: pytest.TempPathFactory, products_dir: Path, embedder: ProductEmbedder
) -> tuple[BuiltCatalog, BuiltCatalog, Path]:
    base = tmp_path_factory.mktemp("catalog")
    skus = all_skus(products_dir)
    cache = base / "cache"
    iconic = build_index(make_catalog(base / "iconic", products_dir, skus), cache, embedder)
    refs = {sku: within_session_split(products_dir, sku)[0] for sku in skus}
    with_shelf = build_index(make_catalog(base / "shelf", products_dir, skus, refs), cache, embedder)
    assert with_shelf.stats.cached == len(skus)  # the iconic photos were not embedded twice
    return iconic, with_shelf, cache


def test_session_split_with_studio_and_five_train_visit_photos(
    train_photos: Path,
    tmp_path: Path,
    products_dir: Path,
    embedder: ProductEmbedder,
    queries: dict[Path, np.ndarray],
) -> None:
    train = train_photos
    skus = all_skus(products_dir)
    refs = {sku: sorted((train / sku).glob("*.jpg"))[:SHELF_REFS] for sku in skus}
    assert all(len(r) == SHELF_REFS for r in refs.values())
    cache = tmp_path / "cache"
    built = build_index(make_catalog(tmp_path / "cat", products_dir, skus, refs), cache, embedder)
    items = [(p, sku) for sku in skus for p in shelf_photos(products_dir, sku)]
    top1, top5 = top_k_rates(built.index, items, queries)
    known, precision, unknown = open_set_rates(built, cache, embedder, items, queries)
    print(
        f"\nsession split, reporting part (shared test-split photos): {len(items)} queries, top-1 {top1:.3f}, "
        f"top-5 {top5:.3f}; thresholds {THRESHOLDS}: known accepted {known:.2f} (precision {precision:.2f}), "
        f"unknown accepted {unknown:.2f}"
    )
    assert len(items) == 399
    assert top1 >= 0.82 and top5 >= 0.97  # measured 0.835 / 0.992 (the previous pipeline: 0.629 / 0.940)
    # measured 0.24 / 0.96 / 0.53 (the previous pipeline at its 0.7 / 0.04 / 0.5: 0.25 / 0.71 / 0.31)
    assert unknown <= 0.30 and precision >= 0.93 and known >= 0.48


def test_within_session_studio_references_only(
    within_session: tuple[BuiltCatalog, BuiltCatalog, Path], queries: dict[Path, np.ndarray]
) -> None:
    iconic, _, _ = within_session
    items = [(p, p.parent.name) for p in queries]
    top1, top5 = top_k_rates(iconic.index, items, queries)
    print(f"\nstudio references only: {len(items)} queries, top-1 {top1:.3f}, top-5 {top5:.3f}")
    assert len(items) == 399
    assert top1 >= 0.39 and top5 >= 0.78  # measured 0.411 / 0.802 (the previous pipeline: 0.383 / 0.779)


def test_within_session_with_five_shelf_references(
    within_session: tuple[BuiltCatalog, BuiltCatalog, Path],
    queries: dict[Path, np.ndarray],
    products_dir: Path,
    embedder: ProductEmbedder,
) -> None:
    _, with_shelf, cache_dir = within_session
    items = [(p, sku) for sku in all_skus(products_dir) for p in within_session_split(products_dir, sku)[1]]
    references = {p.name for product in with_shelf.catalog.products.values() for p in product.photos}
    assert not references & {p.name for p, _ in items}  # queries never serve as references
    assert with_shelf.index.whitening is not None and with_shelf.index.whitening.dim == 30
    top1, top5 = top_k_rates(with_shelf.index, items, queries)
    known, precision, unknown = open_set_rates(with_shelf, cache_dir, embedder, items, queries)
    print(
        f"\nwithin-session, {SHELF_REFS} shelf references per SKU: {len(items)} queries, top-1 {top1:.3f}, "
        f"top-5 {top5:.3f}; thresholds {THRESHOLDS}: known accepted {known:.2f} (precision {precision:.2f}), "
        f"unknown accepted {unknown:.2f}"
    )
    assert len(items) == 244
    assert top1 >= 0.91 and top5 >= 0.98  # measured 0.930 / 0.996 (the previous pipeline: 0.852 / 0.980)
    assert unknown <= 0.24 and precision >= 0.96 and known >= 0.66  # measured 0.18 / 0.99 / 0.71

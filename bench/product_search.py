"""Search cost and recall of the catalogue index over 1,000 to 100,000 SKUs: exact numpy vs faiss IVF candidates.

Run: STORE_AGENT_DATA=../shared/data OPENBLAS_NUM_THREADS=1 python bench/product_search.py
     [--sizes 1000 10000 100000] [--queries 200]
One reference row per SKU, 1280-d. With the shared data, rows are synthesised
from the real embeddings of the 430 GroceryStoreDataset photos (a random blend
of two real products with multiplicative noise), so the catalogue has the
model's feature statistics and neighbourhoods; without it, families of ~10
similar post-ReLU vectors (IVF lists are less balanced on those). Uniform
random vectors have no neighbours worth the name and no index helps on them.
Each query is a catalogued row with multiplicative noise (another photo of a
known product). Prints median and p90 ms per query (top 5, one query at a
time as the pipeline does), the IVF build time, recall@5 of the approximate
path against exact search (share of exact top-5 SKUs it also returns) and how
often each finds the query's source SKU first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.catalog import CatalogIndex, SearchResult
from agent.catalog import ann as ann_module
from models.product import EMBEDDING_DIM


def product_like(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    """Families of ~10 similar products (a brand's range) around shared, post-ReLU-like centres."""
    centres = rng.standard_normal((max(1, n // 10), EMBEDDING_DIM), dtype=np.float32)
    family = rng.integers(0, len(centres), n)
    rows = np.maximum(centres[family] + 0.7 * rng.standard_normal((n, EMBEDDING_DIM), dtype=np.float32), 0)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def real_embeddings() -> npt.NDArray[np.float32] | None:
    """Embeddings of the shared product photos (about a minute on 2 cores), or None without the data."""
    import os

    from agent.catalog import read_image
    from models.product import ProductEmbedder

    root = Path(os.environ.get("STORE_AGENT_DATA", "")) / "media" / "products"
    models = root.parents[1] / "models"
    if not root.is_dir() or not (models / "efficientnet_lite0.onnx").is_file():
        return None
    embedder = ProductEmbedder.load(models, threads=2)
    paths = sorted(root.glob("*/*/*.jpg"))
    return embedder.embed([read_image(p) for p in paths])


def blended(rng: np.random.Generator, real: npt.NDArray[np.float32], n: int) -> npt.NDArray[np.float32]:
    a, b = rng.integers(0, len(real), n), rng.integers(0, len(real), n)
    w = rng.uniform(0, 1, (n, 1)).astype(np.float32)
    rows = (w * real[a] + (1 - w) * real[b]) * np.exp(0.5 * rng.standard_normal((n, EMBEDDING_DIM), dtype=np.float32))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def timed(index: CatalogIndex, queries: npt.NDArray[np.float32]) -> tuple[list[float], list[SearchResult]]:
    index.search(queries[0], top=5)
    times, results = [], []
    for q in queries:
        start = time.perf_counter()
        results += index.search(q, top=5)
        times.append((time.perf_counter() - start) * 1000)
    return times, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    real = real_embeddings()
    print("rows: blends of real product embeddings" if real is not None else "rows: synthetic families (no data)")
    print(f"approximate index used automatically from {ann_module.APPROX_MIN_ROWS} rows (nprobe {ann_module.NPROBE})")
    for size in args.sizes:
        matrix = blended(rng, real, size) if real is not None else product_like(rng, size)
        skus = [f"sku-{i}" for i in range(size)]
        source = rng.choice(size, args.queries, replace=False)
        queries = matrix[source] * np.exp(0.3 * rng.standard_normal((args.queries, EMBEDDING_DIM), dtype=np.float32))
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        exact = CatalogIndex(matrix, skus, approximate="never")
        exact_ms, exact_res = timed(exact, queries)
        with tempfile.TemporaryDirectory() as cache:
            started = time.monotonic()
            approx = CatalogIndex(matrix, skus, approximate="always", cache_dir=Path(cache))
            build_s = time.monotonic() - started
            started = time.monotonic()
            CatalogIndex(matrix, skus, approximate="always", cache_dir=Path(cache))  # a restart: index from cache
            cached_s = time.monotonic() - started
        approx_ms, approx_res = timed(approx, queries)
        recall = statistics.mean(
            len({m.sku for m in a.top} & {m.sku for m in e.top}) / len(e.top)
            for a, e in zip(approx_res, exact_res, strict=True)
        )
        first_e = np.mean([r.top[0].sku == skus[s] for r, s in zip(exact_res, source, strict=True)])
        first_a = np.mean([r.top[0].sku == skus[s] for r, s in zip(approx_res, source, strict=True)])
        mb = exact.matrix.nbytes / 2**20
        print(
            f"{size:>7} SKUs ({mb:.0f} MiB): exact median {statistics.median(exact_ms):.2f} ms "
            f"(p90 {np.percentile(exact_ms, 90):.2f}); IVF median {statistics.median(approx_ms):.2f} ms "
            f"(p90 {np.percentile(approx_ms, 90):.2f}), build {build_s:.1f} s (from cache {cached_s:.1f} s),"
            f" recall@5 vs exact {recall:.3f}; "
            f"source SKU first: exact {first_e:.3f}, IVF {first_a:.3f}"
        )


if __name__ == "__main__":
    main()

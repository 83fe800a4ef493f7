"""Search cost of the numpy index over 1,000 to 100,000 SKUs (one reference row per SKU, 1280-d float32).

Run: python bench/product_search.py [--sizes 1000 10000 30000 100000] [--repeats 50]
Rows are random unit vectors: exact search cost depends only on the matrix size.
Prints median ms per query (top 5) and the index's memory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.catalog import CatalogIndex
from models.product import EMBEDDING_DIM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 30000, 100000])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for size in args.sizes:
        matrix = np.abs(rng.standard_normal((size, EMBEDDING_DIM), dtype=np.float32))
        index = CatalogIndex(matrix, [f"sku-{i}" for i in range(size)])
        del matrix
        queries = np.abs(rng.standard_normal((args.repeats, EMBEDDING_DIM), dtype=np.float32))
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        index.search(queries[0], top=5)
        times = []
        for q in queries:
            start = time.perf_counter()
            index.search(q, top=5)
            times.append((time.perf_counter() - start) * 1000)
        mb = index.matrix.nbytes / 2**20
        median = statistics.median(times)
        print(f"search {size:>7} SKUs: median {median:.2f} ms, max {max(times):.2f} ms, index {mb:.0f} MiB")


if __name__ == "__main__":
    main()

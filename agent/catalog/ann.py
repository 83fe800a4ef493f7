"""Approximate candidate search for large catalogues: a faiss inverted-file index (IVF, exact vectors).

Above :data:`APPROX_MIN_ROWS` reference rows the exact numpy scan stops
meeting 10 ms per query on a 2-core terminal (it reads the whole matrix per
query). An IVF index clusters the rows once (k-means on a sample) and scans
only the ``nprobe`` nearest clusters; the candidates it returns are re-scored
exactly by :class:`agent.catalog.index.CatalogIndex`. IVF rather than HNSW
because its build is a k-means over a sample (tens of seconds at 100,000
rows on 2 cores) where an HNSW graph over 1280-d rows took minutes.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

#: Rows from which the approximate index is used (bench/product_search.py: exact search is ~5 ms at
#: 10,000 rows and ~51 ms at 100,000 on the 2-core dev VM, so it crosses 10 ms near 20,000).
APPROX_MIN_ROWS = 20_000
#: Clusters scanned per query (of 2 * sqrt(rows)): recall@5 0.996 of exact on the bench's product-like rows.
NPROBE = 8
TRAIN_PER_LIST = 20
THREADS = 1


def available() -> bool:
    """Whether faiss-cpu is installed (without it every search is exact)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class IvfCandidates:
    """Inner-product IVF over unit rows; ``candidates`` returns row numbers, best first."""

    def __init__(self, matrix: npt.NDArray[np.float32], nprobe: int = NPROBE, seed: int = 0) -> None:
        import faiss

        # One OpenMP thread: a single query's scan is sub-millisecond, and idle OpenMP workers spinning on a
        # busy 2-core terminal made it ~10x slower (the same reason BLAS is pinned to one thread there).
        faiss.omp_set_num_threads(THREADS)
        started = time.monotonic()
        rows, dim = matrix.shape
        self.nlists = max(1, int(2 * math.sqrt(rows)))
        quantiser = faiss.IndexFlatIP(dim)
        index: Any = faiss.IndexIVFFlat(quantiser, dim, self.nlists, faiss.METRIC_INNER_PRODUCT)
        sample = min(rows, TRAIN_PER_LIST * self.nlists)
        rng = np.random.default_rng(seed)
        train = matrix[np.sort(rng.choice(rows, sample, replace=False))] if sample < rows else matrix
        index.train(np.ascontiguousarray(train))
        index.add(matrix)
        index.nprobe = min(nprobe, self.nlists)
        self._quantiser = quantiser  # faiss does not own it from Python; keep it alive
        self.index = index
        self.build_s = time.monotonic() - started
        logger.info("approximate index: %d rows in %d lists, built in %.1f s", rows, self.nlists, self.build_s)

    def candidates(self, queries: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
        """``len(queries) x k`` row numbers (-1 where fewer were found)."""
        _, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return np.asarray(ids, dtype=np.int64)

"""Approximate candidate search for large catalogues: a faiss inverted-file index (IVF, exact vectors).

Above :data:`APPROX_MIN_ROWS` reference rows the exact numpy scan stops
meeting 10 ms per query on a 2-core terminal (it reads the whole matrix per
query). An IVF index clusters the rows once (k-means on a sample) and scans
only the ``nprobe`` nearest clusters; the candidates it returns are re-scored
exactly by :class:`agent.catalog.index.CatalogIndex`. IVF rather than HNSW
because its build is a k-means over a sample (tens of seconds at 100,000
rows on 2 cores) where an HNSW graph over 1280-d rows took minutes.

The trained index is saved in the catalogue's cache folder under the sha256 of
the rows it indexes (and its parameters), so a restart or a rebuild with the
same photos loads it instead of clustering again (5.9 s at 100,000 rows).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from pathlib import Path
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
    """Inner-product IVF over unit rows; ``candidates`` returns row numbers, best first.

    ``cache_dir``: where the trained index is kept between runs (None: build every time); ``cache_key``
    names the rows' content when the caller already knows it (the catalogue's photo hashes), which saves
    hashing the matrix itself (about 1 s at 100,000 rows).
    """

    def __init__(
        self,
        matrix: npt.NDArray[np.float32],
        nprobe: int = NPROBE,
        seed: int = 0,
        cache_dir: Path | None = None,
        cache_key: str | None = None,
    ) -> None:
        import faiss

        # One OpenMP thread: a single query's scan is sub-millisecond, and idle OpenMP workers spinning on a
        # busy 2-core terminal made it ~10x slower (the same reason BLAS is pinned to one thread there).
        faiss.omp_set_num_threads(THREADS)
        started = time.monotonic()
        rows, dim = matrix.shape
        self.nlists = max(1, int(2 * math.sqrt(rows)))
        self.cache_path = (
            cache_dir / f"ivf-{self._key(matrix, seed, cache_key)}.faiss" if cache_dir is not None else None
        )
        index = self._load_cached(rows, dim)
        self.from_cache = index is not None
        if index is None:
            quantiser = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantiser, dim, self.nlists, faiss.METRIC_INNER_PRODUCT)
            sample = min(rows, TRAIN_PER_LIST * self.nlists)
            rng = np.random.default_rng(seed)
            train = matrix[np.sort(rng.choice(rows, sample, replace=False))] if sample < rows else matrix
            index.train(np.ascontiguousarray(train))
            index.add(matrix)
            self._quantiser = quantiser  # faiss does not own it from Python; keep it alive
            self._save(index)
        index.nprobe = min(nprobe, self.nlists)
        self.index: Any = index
        self.build_s = time.monotonic() - started
        logger.info(
            "approximate index: %d rows in %d lists, %s in %.1f s",
            rows,
            self.nlists,
            "loaded from cache" if self.from_cache else "built",
            self.build_s,
        )

    def _key(self, matrix: npt.NDArray[np.float32], seed: int, content: str | None) -> str:
        digest = hashlib.sha256(f"ivfflat-ip {matrix.shape} {self.nlists} {TRAIN_PER_LIST} {seed}".encode())
        if content is not None:
            digest.update(content.encode())
        else:
            digest.update(np.ascontiguousarray(matrix, dtype=np.float32).data)
        return digest.hexdigest()[:32]

    def _load_cached(self, rows: int, dim: int) -> Any:
        """The cached index when it is there and whole; None (and a warning for a bad file) otherwise."""
        import faiss

        if self.cache_path is None or not self.cache_path.is_file():
            return None
        try:
            index = faiss.read_index(str(self.cache_path))
        except RuntimeError as exc:
            logger.warning("approximate index cache %s is unreadable (%s); rebuilding it", self.cache_path, exc)
            return None
        if index.ntotal != rows or index.d != dim:
            logger.warning("approximate index cache %s does not match the catalogue; rebuilding it", self.cache_path)
            return None
        return index

    def _save(self, index: Any) -> None:
        """Write the index beside the catalogue cache (atomically) and drop older ones; a failure only costs time."""
        import faiss

        if self.cache_path is None:
            return
        tmp = self.cache_path.with_suffix(".tmp")
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            faiss.write_index(index, str(tmp))
            os.replace(tmp, self.cache_path)
            for old in self.cache_path.parent.glob("ivf-*.faiss"):
                if old != self.cache_path:
                    old.unlink(missing_ok=True)
        except (OSError, RuntimeError) as exc:
            tmp.unlink(missing_ok=True)
            logger.warning("cannot keep the approximate index in %s (%s): it is rebuilt at every start", tmp, exc)

    def candidates(self, queries: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
        """``len(queries) x k`` row numbers (-1 where fewer were found)."""
        _, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return np.asarray(ids, dtype=np.int64)

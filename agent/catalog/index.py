"""Nearest-neighbour search over reference-photo embeddings: one normalised matrix in numpy.

Rows are reference photos (several per SKU); a SKU's score is its best row's
cosine similarity. Exact search is one matrix-vector product plus a partial
sort; bench/product_search.py measures where it stops being fast enough
(see docs/product.md for the figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ProductMatch:
    """One candidate SKU and its cosine similarity to the query (1.0 = identical)."""

    sku: str
    score: float


@dataclass(frozen=True)
class SearchResult:
    """The best distinct SKUs for one query, best first."""

    top: tuple[ProductMatch, ...]

    @property
    def best(self) -> ProductMatch | None:
        return self.top[0] if self.top else None

    @property
    def margin(self) -> float:
        """How far the best SKU is ahead of the runner-up (1.0 when there is no runner-up)."""
        if not self.top:
            return 0.0
        return self.top[0].score - self.top[1].score if len(self.top) > 1 else 1.0

    def accepted(self, min_score: float, min_margin: float) -> ProductMatch | None:
        """The best SKU if it is both close enough and clearly ahead; otherwise unknown (None)."""
        best = self.best
        if best is None or best.score < min_score or self.margin < min_margin:
            return None
        return best


class CatalogIndex:
    """Exact cosine search; ``matrix`` rows must be unit length (they are normalised here anyway)."""

    def __init__(self, matrix: Vectors, row_skus: Sequence[str]) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != len(row_skus):
            raise ValueError(f"matrix {matrix.shape} does not match {len(row_skus)} row labels")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.matrix: Vectors = np.ascontiguousarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)
        self.skus: list[str] = sorted(set(row_skus))
        ids = {sku: i for i, sku in enumerate(self.skus)}
        self.row_ids = np.array([ids[s] for s in row_skus], dtype=np.int64)
        counts = np.bincount(self.row_ids, minlength=len(self.skus)) if len(row_skus) else np.zeros(0, np.int64)
        self.max_rows_per_sku = int(counts.max()) if counts.size else 0

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def search(self, queries: Vectors, top: int = 5) -> list[SearchResult]:
        """The ``top`` best distinct SKUs for each query row (queries should be unit length)."""
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.shape[1] != self.dim:
            raise ValueError(f"query dimension {queries.shape[1]} does not match the index ({self.dim})")
        if len(self) == 0 or top < 1:
            return [SearchResult(top=()) for _ in range(len(queries))]
        scores = queries.astype(np.float32, copy=False) @ self.matrix.T
        # The k best distinct SKUs are always among the k * max_rows_per_sku best rows.
        keep = min(len(self), top * self.max_rows_per_sku)
        results = []
        for row in scores:
            candidates = np.argpartition(-row, keep - 1)[:keep] if keep < len(self) else np.arange(len(self))
            ordered = candidates[np.argsort(-row[candidates], kind="stable")]
            seen: set[int] = set()
            found: list[ProductMatch] = []
            for r in ordered:
                sku_id = int(self.row_ids[r])
                if sku_id in seen:
                    continue
                seen.add(sku_id)
                found.append(ProductMatch(self.skus[sku_id], float(row[r])))
                if len(found) == top:
                    break
            results.append(SearchResult(top=tuple(found)))
        return results

"""Nearest-neighbour search over reference-photo embeddings: one normalised matrix in numpy.

Rows are reference photos (several per SKU); a SKU's score is its best row's
cosine similarity, in the catalogue-whitened space when the catalogue has
enough photos (agent/catalog/whitening.py). Exact search is one matrix-vector
product plus a partial sort; from :data:`agent.catalog.ann.APPROX_MIN_ROWS`
rows a faiss IVF index proposes candidates that are re-scored exactly here
(bench/product_search.py measures both; figures in docs/product.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from agent.catalog import ann
from agent.catalog.whitening import Whitening, fit_whitening, supports_whitening
from models.vectors import l2_normalise

logger = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ProductMatch:
    """One candidate SKU and its similarity to the query (1.0 = identical).

    ``score`` is the cosine in the searched space (catalogue-whitened when the
    index is whitened); ``cosine`` the best plain embedding cosine to the SKU's
    reference photos, which still says whether the query looks like a product
    at all (whitening keeps only what separates the catalogue's SKUs).
    """

    sku: str
    score: float
    cosine: float | None = None


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

    def accepted(self, min_score: float, min_margin: float, min_cosine: float = -1.0) -> ProductMatch | None:
        """The best SKU if it is close enough (in both spaces) and clearly ahead; otherwise unknown (None)."""
        best = self.best
        if best is None or best.score < min_score or self.margin < min_margin:
            return None
        if best.cosine is not None and best.cosine < min_cosine:
            return None
        return best


Approximate = Literal["auto", "always", "never"]


class CatalogIndex:
    """Cosine search over reference rows (embeddings; normalised here anyway).

    ``whiten``: fit catalogue whitening on these rows when they support it.
    ``approximate``: "auto" uses the IVF index from ``ann.APPROX_MIN_ROWS`` rows
    when faiss is installed; "always" / "never" force it (tests, benchmarks).
    ``cache_dir``: where the trained IVF index is kept between runs; ``cache_key`` names the rows' content
    (see :class:`agent.catalog.ann.IvfCandidates`).
    ``fit_matrix`` / ``fit_skus``: rows the whitening is fitted on instead of ``matrix`` (the augmented copies
    of each reference photo, agent/catalog/build.py); whether to whiten at all still depends on how many
    photos ``matrix`` has per SKU.
    """

    def __init__(
        self,
        matrix: Vectors,
        row_skus: Sequence[str],
        whiten: bool = False,
        approximate: Approximate = "auto",
        cache_dir: Path | None = None,
        cache_key: str | None = None,
        fit_matrix: Vectors | None = None,
        fit_skus: Sequence[str] | None = None,
    ) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != len(row_skus):
            raise ValueError(f"matrix {matrix.shape} does not match {len(row_skus)} row labels")
        unit: Vectors = np.ascontiguousarray(l2_normalise(matrix))
        self.skus: list[str] = sorted(set(row_skus))
        ids = {sku: i for i, sku in enumerate(self.skus)}
        self.row_ids = np.array([ids[s] for s in row_skus], dtype=np.int64)
        counts = np.bincount(self.row_ids, minlength=len(self.skus)) if len(row_skus) else np.zeros(0, np.int64)
        self.max_rows_per_sku = int(counts.max()) if counts.size else 0
        order = np.argsort(self.row_ids, kind="stable")
        self.rows_of_sku: list[npt.NDArray[np.int64]] = np.split(order, np.cumsum(counts)[:-1]) if counts.size else []
        self.whitening: Whitening | None = None
        if whiten and supports_whitening(self.row_ids):
            if fit_matrix is not None and fit_skus is not None:
                fit_ids = np.array([ids[s] for s in fit_skus], dtype=np.int64)
                self.whitening = fit_whitening(l2_normalise(fit_matrix), fit_ids)
            else:
                self.whitening = fit_whitening(unit, self.row_ids)
        #: What is searched: the whitened rows, else the unit rows themselves.
        self.matrix: Vectors = (
            np.ascontiguousarray(self.whitening.project(unit)) if self.whitening is not None else unit
        )
        #: The reference embeddings as given (unit length). With whitening they only give each match its plain
        #: cosine, so they are kept in float16: half the memory of a second copy of the catalogue, cosines
        #: within 1e-3. Without whitening they are the searched rows.
        self.embeddings: npt.NDArray[np.floating[Any]] = unit.astype(np.float16) if self.whitening is not None else unit
        self.approximate: ann.IvfCandidates | None = None
        use_ann = approximate == "always" or (approximate == "auto" and len(self) >= ann.APPROX_MIN_ROWS)
        if use_ann and len(self) > 0:
            if ann.available():
                self.approximate = ann.IvfCandidates(self.matrix, cache_dir=cache_dir, cache_key=cache_key)
            else:
                logger.warning(
                    "catalogue has %d reference rows but faiss-cpu is not installed: searches stay exact (slow)",
                    len(self),
                )

    @property
    def dim(self) -> int:
        """Dimension of the embeddings a query must have (before any whitening)."""
        return int(self.embeddings.shape[1])

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
        queries = queries.astype(np.float32, copy=False)
        raw = queries
        if self.whitening is not None:
            queries = self.whitening.project(queries)
        # The k best distinct SKUs are always among the k * max_rows_per_sku best rows.
        keep = min(len(self), top * self.max_rows_per_sku)
        if self.approximate is not None:
            # Candidates from the IVF index (at least 64, for recall), re-scored exactly against the matrix.
            ids = self.approximate.candidates(queries, max(keep, 64))
            return [
                self._distinct(rows[rows >= 0], self.matrix[rows[rows >= 0]] @ query, top, q)
                for query, rows, q in zip(queries, ids, raw, strict=True)
            ]
        results = []
        for row, q in zip(queries @ self.matrix.T, raw, strict=True):
            candidates = np.argpartition(-row, keep - 1)[:keep] if keep < len(self) else np.arange(len(self))
            results.append(self._distinct(candidates, row[candidates], top, q))
        return results

    def _distinct(self, rows: npt.NDArray[np.int64], scores: Vectors, top: int, raw: Vectors) -> SearchResult:
        """The ``top`` best distinct SKUs among candidate ``rows`` with their exact ``scores``.

        With whitening, each match also carries the best plain cosine of ``raw`` (the query embedding) to its SKU.
        """
        order = np.argsort(-scores, kind="stable")
        seen: set[int] = set()
        found: list[ProductMatch] = []
        for r, score in zip(rows[order], scores[order], strict=True):
            sku_id = int(self.row_ids[r])
            if sku_id in seen:
                continue
            seen.add(sku_id)
            cosine = (
                float((self.embeddings[self.rows_of_sku[sku_id]].astype(np.float32) @ raw).max())
                if self.whitening is not None
                else None
            )
            found.append(ProductMatch(self.skus[sku_id], float(score), cosine))
            if len(found) == top:
                break
        return SearchResult(top=tuple(found))

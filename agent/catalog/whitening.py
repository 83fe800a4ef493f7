"""Catalogue whitening: a linear projection fitted on the store's own reference photos (no retraining).

EfficientNet's pooled ImageNet features spend most of their variance on
lighting, background and viewpoint, which is what separates two photos of the
*same* product on a shelf. With several reference photos per SKU the catalogue
itself says which directions are nuisance: whitening the within-SKU covariance
and keeping the directions along which SKU means differ (LDA) turns cosine
search into a search along product identity. Fitted at every catalogue build
(milliseconds at store scale), on reference photos only, so queries never
influence it. The catalogue builder fits it on augmented copies of each
reference photo (models/product/augment.py), which add the framings and light
that five photos from one session lack. Figures on a session split of the
GroceryStoreDataset are in docs/product.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.vectors import l2_normalise

logger = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

#: Photos beyond one per SKU that the catalogue needs before a within-SKU covariance means anything.
MIN_EXTRA_PHOTOS = 8
#: Shrinkage towards the identity, as a fraction of the mean within-SKU variance (results are flat over 0.01-1).
REGULARISATION = 0.1


@dataclass(frozen=True)
class Whitening:
    """``project(x) = normalise((normalise(x) - mean) @ projection)``."""

    mean: Vectors
    projection: Vectors

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1])

    def project(self, vectors: Vectors) -> Vectors:
        return l2_normalise((l2_normalise(vectors) - self.mean) @ self.projection)


def supports_whitening(row_ids: npt.NDArray[np.int64]) -> bool:
    """Whether reference photos labelled by SKU id can support whitening (see :func:`fit_whitening`); logs why not."""
    counts = np.bincount(row_ids) if len(row_ids) else np.zeros(0, np.int64)
    n_skus = int((counts > 0).sum())
    extra = len(row_ids) - n_skus
    if n_skus < 2 or extra < MIN_EXTRA_PHOTOS:
        logger.info(
            "catalogue whitening off: %d SKUs with %d photos beyond the first of each (needs %d); plain cosine search",
            n_skus,
            extra,
            MIN_EXTRA_PHOTOS,
        )
        return False
    return True


def fit_whitening(
    matrix: Vectors, row_ids: npt.NDArray[np.int64], regularisation: float = REGULARISATION
) -> Whitening | None:
    """Fit LDA whitening on unit-length reference rows labelled by SKU id; None when the catalogue cannot support it.

    Needs at least two SKUs and :data:`MIN_EXTRA_PHOTOS` photos beyond the first
    of each SKU (a studio-photo-only catalogue has no within-SKU variation to learn from).
    """
    n_rows, dim = matrix.shape
    if not supports_whitening(row_ids):
        return None
    counts = np.bincount(row_ids)
    n_skus = int((counts > 0).sum())
    x = matrix.astype(np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    sums = np.zeros((len(counts), dim))
    np.add.at(sums, row_ids, centred)
    sku_means = sums / np.maximum(counts, 1)[:, None]
    within = centred - sku_means[row_ids]
    cov_within = within.T @ within / n_rows
    cov_within += regularisation * np.trace(cov_within) / dim * np.eye(dim)
    eigval, eigvec = np.linalg.eigh(cov_within)
    whiten = eigvec / np.sqrt(np.maximum(eigval, 1e-12))
    present = sku_means[counts > 0] @ whiten
    present -= present.mean(axis=0)
    cov_between = present.T @ present / len(present)
    bval, bvec = np.linalg.eigh(cov_between)
    keep = min(n_skus - 1, dim)
    order = np.argsort(bval)[::-1][:keep]
    projection = (whiten @ bvec[:, order]).astype(np.float32)
    logger.info("catalogue whitening: %d SKUs, %d photos -> %d dimensions", n_skus, n_rows, keep)
    return Whitening(mean=mean.astype(np.float32), projection=projection)

"""Turning the catalogue's photos into a search index, embedding only photos not seen before.

Each photo is embedded as several augmented copies (``embed_references``,
models/product/augment.py): the index searches one row per photo (the
normalised mean of its copies) and the catalogue whitening is fitted on all
copies, which tells it far better than five photos per SKU what varies
between shots of one product (docs/product.md has the figures).

Embeddings are cached by the sha256 of each photo's bytes in one ``.npz`` file
under the cache folder (float16, copies x 1280 per photo), together with the
embedder's reference version (model, pre-processing, input size, augmentation
set). Renaming a photo costs nothing, adding one costs one photo's copies, and
a new model or pre-processing re-embeds everything. A long build saves the
cache every ``SAVE_EVERY_S`` seconds as it goes, so a build cut short (a
restart on a slow board) resumes where it stopped instead of starting over.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from agent.catalog.catalog import Catalog, CatalogError, load_catalog
from agent.catalog.index import CatalogIndex

logger = logging.getLogger(__name__)

CACHE_FILE = "embeddings.npz"
BATCH = 16
#: Augmented rows the whitening is fitted on at most (the copies of every n-th photo beyond that): bounds the
#: fit's memory (rows x 1280 float64) and time for large catalogues.
MAX_FIT_ROWS = 64_000
#: How often a build in progress saves what it has embedded so far.
SAVE_EVERY_S = 30.0

#: ``progress(done, total, path)``: first ``(0, total, None)`` once the photos to embed are known (``total``
#: counts only those: a photo already in the cache costs nothing and is not reported), then after each
#: photo embedded.
Progress = Callable[[int, int, Path | None], None]


class Embedder(Protocol):
    """What the builder needs from ``models.product.ProductEmbedder``."""

    @property
    def reference_version(self) -> str: ...

    def embed_references(self, images: list[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class BuildStats:
    photos: int
    embedded: int
    cached: int
    seconds: float


@dataclass(frozen=True)
class BuiltCatalog:
    """A catalogue with its index: what the pipeline and the CLI search against."""

    catalog: Catalog
    index: CatalogIndex
    stats: BuildStats


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_image(path: Path) -> npt.NDArray[np.uint8]:
    """Decode an image file to BGR, or raise :class:`CatalogError` naming it."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise CatalogError(f"{path}: not a readable image (OpenCV cannot decode it)")
    return np.asarray(image, dtype=np.uint8)


class EmbeddingCache:
    """sha256 of a photo -> its augmented copies' embeddings (copies x dim), for one embedder version, in one npz."""

    def __init__(self, folder: Path, version: str) -> None:
        self.path = folder / CACHE_FILE
        self.version = version
        self.vectors: dict[str, npt.NDArray[np.float16]] = {}
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                version = str(data["version"])
                hashes = [str(h) for h in data["hashes"]]
                vectors = np.asarray(data["vectors"])
        except (OSError, KeyError, ValueError) as exc:
            logger.warning("embedding cache %s is unreadable (%s); re-embedding every photo", self.path, exc)
            return
        if version != self.version:
            logger.info(
                "embedding cache %s is for %s, not %s; re-embedding every photo", self.path, version, self.version
            )
            return
        self.vectors = dict(zip(hashes, vectors, strict=True))

    def save(self, keep: set[str] | None = None) -> None:
        """Write the cache atomically, keeping only the hashes still in the catalogue (all, when ``keep`` is
        ``None``: a save in the middle of a build, which does not know every photo's hash yet)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        hashes = sorted(h for h in self.vectors if keep is None or h in keep)
        vectors = np.stack([self.vectors[h] for h in hashes]) if hashes else np.zeros((0, 0, 0), np.float16)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, version=np.array(self.version), hashes=np.array(hashes), vectors=vectors)
        os.replace(tmp, self.path)


def index_from_copies(
    copies: npt.NDArray[np.float32],
    row_skus: list[str],
    whiten: bool,
    cache_dir: Path | None = None,
    cache_key: str | None = None,
) -> CatalogIndex:
    """The index over reference photos given as photos x copies x dim embeddings (``embed_references``).

    One search row per photo, the mean of its copies; the whitening is fitted on
    the copies, of every photo while they make at most :data:`MAX_FIT_ROWS` rows,
    else of every n-th photo.
    """
    n_photos, n_copies, dim = copies.shape
    step = max(1, -(-n_photos * n_copies // MAX_FIT_ROWS))
    return CatalogIndex(
        copies.mean(axis=1),
        row_skus,
        whiten=whiten,
        cache_dir=cache_dir,
        cache_key=cache_key,
        fit_matrix=copies[::step].reshape(-1, dim),
        fit_skus=[sku for sku in row_skus[::step] for _ in range(n_copies)],
    )


def build_index(
    catalog_dir: Path, cache_dir: Path, embedder: Embedder, progress: Progress | None = None, whiten: bool = True
) -> BuiltCatalog:
    """Load the catalogue, embed new photos, save the cache and return the index.

    ``whiten`` fits catalogue whitening (agent/catalog/whitening.py) when the
    catalogue has shelf photos besides its studio ones; it is refitted at every
    build, so it follows the weekly catalogue changes.
    """
    started = time.monotonic()
    catalog = load_catalog(catalog_dir)
    cache = EmbeddingCache(cache_dir, embedder.reference_version)
    jobs = [(p.sku, photo) for p in catalog.products.values() for photo in p.photos]
    total = len(jobs)
    hashes: list[str] = []
    todo: dict[str, Path] = {}  # digest -> the first photo with those bytes, in catalogue order
    for _, photo in jobs:
        try:
            digest = file_sha256(photo)
        except OSError as exc:
            raise CatalogError(f"{photo}: cannot read: {exc.strerror}") from None
        hashes.append(digest)
        if digest not in cache.vectors:
            todo.setdefault(digest, photo)
    pending = list(todo.items())
    if progress:
        progress(0, len(pending), None)
    saved_at = time.monotonic()
    for start in range(0, len(pending), BATCH):
        batch = pending[start : start + BATCH]
        vectors = embedder.embed_references([read_image(path) for _, path in batch])
        for (digest, _), copies in zip(batch, vectors, strict=True):
            cache.vectors[digest] = copies.astype(np.float16)
        if progress:
            progress(start + len(batch), len(pending), batch[-1][1])
        if time.monotonic() - saved_at >= SAVE_EVERY_S:
            cache.save()
            saved_at = time.monotonic()
            logger.info("catalogue %s: %d of %d new photos embedded, cache saved", catalog_dir, start + len(batch),
                        len(pending))  # fmt: skip
    embedded = len(pending)
    cache.save(set(hashes))
    copies = np.stack([cache.vectors[h] for h in hashes]).astype(np.float32)  # photos x copies x dim
    # The rows (and the whitening fitted on them) follow from the embedder and each photo's SKU and bytes.
    content = "\n".join(
        [embedder.reference_version, str(whiten), *(f"{sku} {h}" for (sku, _), h in zip(jobs, hashes, strict=True))]
    )
    index = index_from_copies(copies, [sku for sku, _ in jobs], whiten, cache_dir=cache_dir, cache_key=content)
    stats = BuildStats(photos=total, embedded=embedded, cached=total - embedded, seconds=time.monotonic() - started)
    logger.info(
        "catalogue %s: %d SKUs, %d photos (%d embedded, %d from cache) in %.1f s",
        catalog_dir,
        len(catalog.products),
        total,
        stats.embedded,
        stats.cached,
        stats.seconds,
    )
    return BuiltCatalog(catalog=catalog, index=index, stats=stats)

"""Catalogue files, the embedding cache and the numpy index: bad input gives clear errors; rebuilds reuse work."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from agent.catalog import CatalogError, CatalogIndex, build_index, load_catalog
from models.product import EMBEDDING_DIM, ProductEmbedder
from tests.product.conftest import all_skus, barcode_for, make_catalog


def test_embeddings_are_unit_length_1280d_and_views_change_them(embedder: ProductEmbedder, products_dir: Path) -> None:
    import cv2

    image = cv2.imread(str(products_dir / "catalog" / "Oatly-Oat-Milk" / "iconic.jpg"))
    single = embedder.embed([image, image[:, ::-1].copy()])
    assert single.shape == (2, EMBEDDING_DIM) and single.dtype == np.float32
    assert np.allclose(np.linalg.norm(single, axis=1), 1.0, atol=1e-5)
    assert (single >= 0).all()  # pooled after ReLU
    assert 0.7 < float(single[0] @ single[1]) < 0.999  # a mirrored pack is similar, not identical
    multi = ProductEmbedder(embedder.session, views="multi").embed([image])[0]
    assert multi.shape == (EMBEDDING_DIM,) and 0.8 < float(multi @ single[0]) < 0.9999


def test_index_returns_distinct_skus_best_first_with_margin() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 16)).astype(np.float32)
    rows = np.concatenate([base[[0]], base[[0]] + 0.05, base[[1]], base[[2]]])
    index = CatalogIndex(rows, ["a", "a", "b", "c"])
    result = index.search(base[0] / np.linalg.norm(base[0]), top=3)[0]
    assert result.top[0].sku == "a" and len({m.sku for m in result.top}) == 3
    assert result.top[0].score == pytest.approx(1.0, abs=1e-5)
    assert result.margin == pytest.approx(result.top[0].score - result.top[1].score)
    assert result.accepted(min_score=0.9, min_margin=0.0) is not None
    assert result.accepted(min_score=0.9, min_margin=2.0) is None
    with pytest.raises(ValueError, match="dimension"):
        index.search(np.ones(8, np.float32))


def test_bad_catalogues_name_the_problem(tmp_path: Path, products_dir: Path, embedder: ProductEmbedder) -> None:
    skus = all_skus(products_dir)[:2]
    root = make_catalog(tmp_path / "cat", products_dir, skus)
    data = yaml.safe_load((root / "catalog.yaml").read_text())

    dup = {"products": [*data["products"], dict(data["products"][0], barcode=barcode_for(99))]}
    (root / "catalog.yaml").write_text(yaml.safe_dump(dup))
    with pytest.raises(CatalogError, match=rf"products\[2\]\.sku: duplicate SKU '{skus[0]}'"):
        load_catalog(root)

    dup_code = {"products": [data["products"][0], dict(data["products"][1], barcode=data["products"][0]["barcode"])]}
    (root / "catalog.yaml").write_text(yaml.safe_dump(dup_code))
    with pytest.raises(CatalogError, match=r"products\[1\]\.barcode: .* already the barcode of"):
        load_catalog(root)

    (root / "catalog.yaml").write_text(yaml.safe_dump(data))
    (root / skus[1] / "iconic.jpg").unlink()
    with pytest.raises(CatalogError, match=rf"{skus[1]}: empty folder"):
        load_catalog(root)

    (root / skus[1] / "iconic.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(CatalogError, match=rf"{skus[1]}/iconic.jpg: not a readable image"):
        build_index(root, tmp_path / "cache", embedder)

    shutil.rmtree(root / skus[1])
    with pytest.raises(CatalogError, match=rf"no photo folder .*{skus[1]}"):
        load_catalog(root)

    (root / "catalog.yaml").write_text("products: [{sku: x, price: -1}]")
    with pytest.raises(CatalogError, match=r"catalog.yaml: products.0.name: Field required"):
        load_catalog(root)
    (root / "catalog.yaml").unlink()
    with pytest.raises(CatalogError, match=r"catalog\.yaml: not found"):
        load_catalog(root)


def test_rebuild_embeds_only_what_changed(tmp_path: Path, products_dir: Path, embedder: ProductEmbedder) -> None:
    skus = all_skus(products_dir)[:3]
    root = make_catalog(tmp_path / "cat", products_dir, skus)
    cache = tmp_path / "cache"
    seen: list[tuple[int, int]] = []
    first = build_index(root, cache, embedder, lambda done, total, _: seen.append((done, total)))
    assert (first.stats.photos, first.stats.embedded, first.stats.cached) == (3, 3, 0)
    assert seen[-1] == (3, 3)

    again = build_index(root, cache, embedder)
    assert (again.stats.embedded, again.stats.cached) == (0, 3)
    assert np.array_equal(again.index.matrix, first.index.matrix)

    shelf = sorted((products_dir / "shelf" / skus[0]).glob("*.jpg"))[0]
    shutil.copy(shelf, root / skus[0] / "shelf.jpg")
    (root / skus[1] / "iconic.jpg").rename(root / skus[1] / "front.jpg")  # a rename is not a change
    grown = build_index(root, cache, embedder)
    assert (grown.stats.photos, grown.stats.embedded, grown.stats.cached) == (4, 1, 3)
    assert grown.catalog.sku_for_barcode(barcode_for(2)) == skus[2]

    other = ProductEmbedder(embedder.session, views="multi")  # another embedder version re-embeds all
    assert build_index(root, cache, other).stats.embedded == 4

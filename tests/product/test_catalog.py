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
    cropped = ProductEmbedder(embedder.session, centre_crop=0.8)
    assert cropped.version != embedder.version  # cached vectors of the whole image are not reused
    assert 0.7 < float(cropped.embed([image])[0] @ single[0]) < 0.9999
    with pytest.raises(ValueError, match="centre_crop"):
        ProductEmbedder(embedder.session, centre_crop=0.1)
    with pytest.raises(ValueError, match="multiple of 32"):
        ProductEmbedder(embedder.session, input_size=300)


def test_reference_copies_are_unit_length_and_their_mean_is_the_search_row(
    embedder: ProductEmbedder, products_dir: Path
) -> None:
    from agent.catalog import read_image
    from models.product.augment import N_REFERENCE_VIEWS

    image = read_image(products_dir / "catalog" / "Oatly-Oat-Milk" / "iconic.jpg")
    copies = embedder.embed_references([image, image])
    assert copies.shape == (2, N_REFERENCE_VIEWS, EMBEDDING_DIM)
    assert np.allclose(np.linalg.norm(copies, axis=2), 1.0, atol=1e-5)
    assert np.array_equal(copies[0], copies[1])  # deterministic: cached rows stay valid
    whole = ProductEmbedder(embedder.session, centre_crop=1.0).embed([image])[0]
    assert np.allclose(copies[0, 0], whole, atol=1e-5)  # the first copy is the photo itself
    pairwise = copies[0] @ copies[0].T
    assert pairwise.min() > 0.5 and pairwise[~np.eye(N_REFERENCE_VIEWS, dtype=bool)].max() < 0.9999


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


def test_whitening_needs_shelf_photos_and_keeps_search_consistent() -> None:
    rng = np.random.default_rng(1)
    centres = np.abs(rng.normal(size=(6, 32))).astype(np.float32)
    labels = [f"sku-{i}" for i in range(6)]
    studio_only = CatalogIndex(centres, labels, whiten=True)
    assert studio_only.whitening is None  # no within-SKU variation to learn from: plain cosine
    rows = np.concatenate([centres + 0.3 * np.abs(rng.normal(size=centres.shape)) for _ in range(3)]).astype(np.float32)
    index = CatalogIndex(rows, labels * 3, whiten=True)
    assert index.whitening is not None and index.whitening.dim == 5  # one fewer than the SKUs
    assert index.dim == 32 and index.matrix.shape == (18, 5)
    assert np.allclose(np.linalg.norm(index.matrix, axis=1), 1.0, atol=1e-5)
    found = [r.top[0].sku for r in index.search(centres / np.linalg.norm(centres, axis=1, keepdims=True), top=3)]
    assert found == labels


def test_approximate_index_matches_exact_on_a_larger_catalogue() -> None:
    pytest.importorskip("faiss", reason="faiss-cpu is not installed: large catalogues use exact search")
    rng = np.random.default_rng(2)
    families = np.maximum(rng.normal(size=(300, 64)), 0).astype(np.float32)
    rows = np.maximum(families[rng.integers(0, 300, 3000)] + 0.5 * rng.normal(size=(3000, 64)), 0).astype(np.float32)
    labels = [f"sku-{i}" for i in range(3000)]
    exact = CatalogIndex(rows, labels, approximate="never")
    approx = CatalogIndex(rows, labels, approximate="always")
    assert exact.approximate is None and approx.approximate is not None
    queries = rows[:200] * np.exp(0.2 * rng.normal(size=(200, 64))).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    pairs = list(zip(exact.search(queries, top=5), approx.search(queries, top=5), strict=True))
    recall = np.mean([len({m.sku for m in e.top} & {m.sku for m in a.top}) / 5 for e, a in pairs])
    same_first = np.mean(  # same SKU with the exact score (candidates are re-ranked exactly)
        [e.top[0].sku == a.top[0].sku and abs(e.top[0].score - a.top[0].score) < 1e-5 for e, a in pairs]
    )
    print(f"\nIVF vs exact, 3,000 rows: recall@5 {recall:.3f}, identical top-1 {same_first:.3f}")
    assert recall >= 0.95 and same_first >= 0.98  # measured 0.973 / 1.000


def test_approximate_index_is_kept_between_runs_and_rebuilt_when_stale_or_damaged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("faiss", reason="faiss-cpu is not installed: large catalogues use exact search")
    rng = np.random.default_rng(3)
    rows = np.maximum(rng.normal(size=(2000, 32)), 0).astype(np.float32)
    labels = [f"sku-{i // 2}" for i in range(2000)]
    queries = rows[:50] / np.linalg.norm(rows[:50], axis=1, keepdims=True)
    first = CatalogIndex(rows, labels, approximate="always", cache_dir=tmp_path)
    assert first.approximate is not None and not first.approximate.from_cache
    (cached,) = tmp_path.glob("ivf-*.faiss")
    again = CatalogIndex(rows, labels, approximate="always", cache_dir=tmp_path)
    assert again.approximate is not None and again.approximate.from_cache
    assert [r.top for r in again.search(queries)] == [r.top for r in first.search(queries)]

    changed = CatalogIndex(rows[:1900], labels[:1900], approximate="always", cache_dir=tmp_path)
    assert changed.approximate is not None and not changed.approximate.from_cache
    assert not cached.exists() and len(list(tmp_path.glob("ivf-*.faiss"))) == 1  # the stale index is dropped

    (current,) = tmp_path.glob("ivf-*.faiss")
    current.write_bytes(current.read_bytes()[:1000])
    with caplog.at_level("WARNING", logger="agent.catalog.ann"):
        rebuilt = CatalogIndex(rows[:1900], labels[:1900], approximate="always", cache_dir=tmp_path)
    assert rebuilt.approximate is not None and not rebuilt.approximate.from_cache
    assert f"approximate index cache {current} is unreadable" in caplog.text
    assert [r.top for r in rebuilt.search(queries)] == [r.top for r in changed.search(queries)]

    # With the content named by the caller (build_index: embedder version and photo hashes), the key is that name.
    keyed = CatalogIndex(rows, labels, approximate="always", cache_dir=tmp_path, cache_key="v1 photos-a")
    assert keyed.approximate is not None and not keyed.approximate.from_cache
    same = CatalogIndex(rows, labels, approximate="always", cache_dir=tmp_path, cache_key="v1 photos-a")
    assert same.approximate is not None and same.approximate.from_cache
    other = CatalogIndex(rows, labels, approximate="always", cache_dir=tmp_path, cache_key="v1 photos-b")
    assert other.approximate is not None and not other.approximate.from_cache


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

    # Query views do not change reference rows; another input size (another embedder version) re-embeds all.
    assert ProductEmbedder(embedder.session, views="multi").reference_version == embedder.reference_version
    other = ProductEmbedder(embedder.session, input_size=320)
    assert build_index(root, cache, other).stats.embedded == 4


def test_a_build_cut_short_resumes_from_what_it_saved(
    tmp_path: Path, products_dir: Path, embedder: ProductEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow board restarted in the middle of embedding its catalogue keeps what it had embedded (issue 17)."""
    import agent.catalog.build as build

    monkeypatch.setattr(build, "SAVE_EVERY_S", 0.0)  # save after every batch, as a long build does every 30 s
    skus = all_skus(products_dir)[:24]
    root = make_catalog(tmp_path / "cat", products_dir, skus)
    cache = tmp_path / "cache"

    class Stopped(Exception):
        pass

    def stop_in_second_batch(done: int, total: int, _: Path | None) -> None:
        if done > build.BATCH:
            raise Stopped  # the second batch embedded, not saved: the process dies (TimeoutStartSec, a power cut)

    with pytest.raises(Stopped):
        build_index(root, cache, embedder, stop_in_second_batch)
    resumed = build_index(root, cache, embedder)
    assert (resumed.stats.photos, resumed.stats.cached, resumed.stats.embedded) == (24, build.BATCH, 24 - build.BATCH)
    assert np.array_equal(resumed.index.matrix, build_index(root, tmp_path / "fresh", embedder).index.matrix)

"""Fixtures for product recognition: the real EfficientNet-Lite0 model and the GroceryStoreDataset photos."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from models.product import ProductEmbedder
from tests.conftest import require_data


@pytest.fixture(scope="session")
def products_dir() -> Path:
    return require_data("media/products")


@pytest.fixture(scope="session")
def embedder(models_dir: Path) -> ProductEmbedder:
    """One session for the whole test run (loading and warming up costs about a second)."""
    require_data("models/efficientnet_lite0.onnx")
    return ProductEmbedder.load(models_dir, threads=2, views="single")


def all_skus(products_dir: Path) -> list[str]:
    return sorted(p.name for p in (products_dir / "catalog").iterdir() if p.is_dir())


def barcode_for(i: int) -> str:
    """An in-store EAN-13 (prefix 20, valid check digit): the dataset has no barcodes of its own."""
    body = f"20{i:010d}"
    check = (10 - sum(int(d) * (3 if k % 2 else 1) for k, d in enumerate(body)) % 10) % 10
    return body + str(check)


def make_catalog(
    root: Path, products_dir: Path, skus: list[str], shelf_refs: dict[str, list[Path]] | None = None
) -> Path:
    """A catalogue folder as a store would write it: catalog.yaml plus iconic.jpg (and shelf photos) per SKU."""
    root.mkdir(parents=True, exist_ok=True)
    products = []
    for i, sku in enumerate(skus):
        folder = root / sku
        folder.mkdir(exist_ok=True)
        shutil.copy(products_dir / "catalog" / sku / "iconic.jpg", folder / "iconic.jpg")
        for photo in (shelf_refs or {}).get(sku, []):
            shutil.copy(photo, folder / photo.name)
        category = "juice" if "Juice" in sku or "Tropicana" in sku else "dairy"
        name = sku.replace("-", " ")
        price = round(1.0 + i / 10, 2)
        products.append({"sku": sku, "name": name, "price": price, "category": category, "barcode": barcode_for(i)})
    (root / "catalog.yaml").write_text(yaml.safe_dump({"currency": "EUR", "products": products}), encoding="utf-8")
    return root

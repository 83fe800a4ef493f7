"""The store catalogue on disk: ``catalog.yaml`` plus one folder of reference photos per SKU.

Layout (the folder is ``pipelines.product.catalog_dir``)::

    catalog/
      catalog.yaml          # products: [{sku, name, price, category, barcode}, ...]
      <sku>/front.jpg       # one or more reference photos per SKU
      <sku>/shelf-1.jpg

The catalogue changes weekly, so it is plain files a store can edit; this
module only reads and checks them, with errors naming the file and entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)

CATALOG_FILE = "catalog.yaml"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class CatalogError(Exception):
    """The catalogue cannot be used; the message names the file and entry."""


class ProductInfo(BaseModel):
    """One catalogue entry as written in ``catalog.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sku: str = Field(pattern=SKU_PATTERN, description="Stock-keeping unit; also the name of its photo folder.")
    name: str = Field(min_length=1, description="Name shown to shoppers.")
    price: float | None = Field(None, ge=0, description="Shelf price in the store's currency.")
    category: str = Field("", description="Category, e.g. 'dairy' or 'juice'.")
    barcode: str | None = Field(
        None, pattern=r"^[0-9A-Za-z-]{4,64}$", description="Code a scanner reads for it (EAN-13, UPC-A, ...)."
    )


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    currency: str = Field("", description="ISO 4217 currency of the prices, e.g. 'EUR'.")
    products: list[ProductInfo] = Field(description="Every product the store wants recognised.")


@dataclass(frozen=True)
class CatalogProduct:
    """A catalogue entry with its reference photos (sorted paths)."""

    info: ProductInfo
    photos: tuple[Path, ...]

    @property
    def sku(self) -> str:
        return self.info.sku


@dataclass(frozen=True)
class Catalog:
    """The parsed catalogue: products by SKU, and barcodes mapped to SKUs."""

    root: Path
    currency: str
    products: dict[str, CatalogProduct]
    by_barcode: dict[str, str]

    def sku_for_barcode(self, code: str) -> str | None:
        return self.by_barcode.get(code.strip())


def photos_in(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; hidden files are ignored."""
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def load_catalog(root: Path) -> Catalog:
    """Read ``root/catalog.yaml`` and the photo folders; raise :class:`CatalogError` on any problem."""
    if not root.is_dir():
        raise CatalogError(f"catalogue folder not found: {root}")
    path = root / CATALOG_FILE
    if not path.is_file():
        raise CatalogError(f"{path}: not found (the catalogue needs a {CATALOG_FILE} listing its products)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from None
    try:
        parsed = CatalogFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise CatalogError(f"{path}: {problems}") from None

    products: dict[str, CatalogProduct] = {}
    first_index: dict[str, int] = {}
    by_barcode: dict[str, str] = {}
    for i, info in enumerate(parsed.products):
        where = f"{path}: products[{i}]"
        if info.sku in first_index:
            first = first_index[info.sku]
            raise CatalogError(f"{where}.sku: duplicate SKU {info.sku!r} (first listed at products[{first}])")
        first_index[info.sku] = i
        if info.barcode is not None:
            if info.barcode in by_barcode:
                owner = by_barcode[info.barcode]
                raise CatalogError(f"{where}.barcode: {info.barcode!r} is already the barcode of {owner!r}")
            by_barcode[info.barcode] = info.sku
        folder = root / info.sku
        if not folder.is_dir():
            raise CatalogError(f"{where}: no photo folder {folder} for SKU {info.sku!r}")
        photos = photos_in(folder)
        if not photos:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise CatalogError(f"{folder}: empty folder: SKU {info.sku!r} has no reference photos ({suffixes})")
        products[info.sku] = CatalogProduct(info=info, photos=tuple(photos))

    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name not in products:
            logger.warning("catalogue folder %s is not listed in %s; its photos are ignored", folder, path)
    if not products:
        raise CatalogError(f"{path}: lists no products")
    return Catalog(root=root, currency=parsed.currency, products=products, by_barcode=by_barcode)

"""The store catalogue: products, reference photos, cached embeddings and the search index."""

from agent.catalog.build import BuildStats, BuiltCatalog, EmbeddingCache, build_index, index_from_copies, read_image
from agent.catalog.catalog import Catalog, CatalogError, CatalogProduct, ProductInfo, load_catalog
from agent.catalog.index import CatalogIndex, ProductMatch, SearchResult

__all__ = [
    "BuildStats",
    "BuiltCatalog",
    "Catalog",
    "CatalogError",
    "CatalogIndex",
    "CatalogProduct",
    "EmbeddingCache",
    "ProductInfo",
    "ProductMatch",
    "SearchResult",
    "build_index",
    "index_from_copies",
    "load_catalog",
    "read_image",
]

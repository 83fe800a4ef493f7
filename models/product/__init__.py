"""Product-image embeddings (EfficientNet-Lite0) for catalogue search."""

from models.product.embedder import EMBEDDING_DIM, ProductEmbedder, Views, preprocess

__all__ = ["EMBEDDING_DIM", "ProductEmbedder", "Views", "preprocess"]

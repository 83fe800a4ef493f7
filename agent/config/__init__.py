"""The store YAML config: section models, loading with line-numbered errors."""

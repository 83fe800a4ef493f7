"""Face test fixtures: the real models loaded once per session, an encrypted gallery per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.identity.gallery import Gallery
from models.face.analyzer import EMBEDDER_MODELS, FaceAnalyzer


@pytest.fixture(scope="session")
def analyzer(models_dir: Path) -> FaceAnalyzer:
    if not (models_dir / "antispoof_minifasnet_v2.onnx").is_file():
        pytest.skip(f"face models not found in {models_dir}")
    return FaceAnalyzer.load(models_dir)


@pytest.fixture
def gallery(tmp_path: Path) -> Gallery:
    g = Gallery(tmp_path / "identity" / "gallery.db", os.urandom(32), EMBEDDER_MODELS["sface"])
    yield g  # type: ignore[misc]
    g.close()

"""Face test fixtures: the real models loaded once per session, an encrypted gallery per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from agent.identity.enrollment import read_image
from agent.identity.gallery import Gallery
from models.face.analyzer import EMBEDDER_MODELS, FaceAnalyzer
from tests.conftest import require_model


@pytest.fixture(scope="session")
def analyzer(models_dir: Path) -> FaceAnalyzer:
    require_model(models_dir, "antispoof_minifasnet_v2.onnx")
    return FaceAnalyzer.load(models_dir)


@pytest.fixture
def gallery(tmp_path: Path) -> Iterator[Gallery]:
    g = Gallery(tmp_path / "identity" / "gallery.db", os.urandom(32), EMBEDDER_MODELS["sface"])
    yield g
    g.close()


def imread(path: Path | str) -> npt.NDArray[np.uint8]:
    """A BGR test image; a missing or unreadable file fails the test with its path."""
    image = read_image(str(path))
    if image is None:
        raise FileNotFoundError(f"cannot read test image {path}")
    return image


def as_bgr(frame: object) -> npt.NDArray[np.uint8]:
    """A frame from cv2.VideoCapture, typed for the analyzer."""
    return np.asarray(frame, dtype=np.uint8)

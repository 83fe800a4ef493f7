"""Scene test fixtures: model wrappers loaded once per session, the PETS2009 clip decoded once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.people import AppearanceEmbedder, PersonDetector, PoseEstimator
from models.runtime import session_for
from tests.conftest import require_data
from tests.media import video_frames

PETS = "media/video/vtest_pets2009_480x360.avi"


@pytest.fixture(scope="session")
def detector(models_dir: Path) -> PersonDetector:
    return PersonDetector(session_for("yolox-nano", models_dir))


@pytest.fixture(scope="session")
def pose(models_dir: Path) -> PoseEstimator:
    return PoseEstimator(session_for("movenet-lightning", models_dir))


@pytest.fixture(scope="session")
def appearance(models_dir: Path) -> AppearanceEmbedder:
    return AppearanceEmbedder(session_for("osnet-x0.25-msmt17", models_dir))


@pytest.fixture(scope="session")
def pets_frames() -> list[np.ndarray]:
    path = require_data(PETS)
    frames = list(video_frames(path))
    assert len(frames) == 795, f"{path}: expected 795 frames, decoded {len(frames)}"
    return frames

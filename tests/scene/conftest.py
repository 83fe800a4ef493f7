"""Scene test fixtures: model wrappers loaded once per session, the PETS2009 clip decoded once."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from models.people import AppearanceEmbedder, PersonDetector, PoseEstimator
from models.people.detector import PersonDetection
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


class RecordedDetector:
    """The real YOLOX detector, each distinct image detected once per test session.

    A frame's detections never change, so tests that run the people pipeline over the same PETS frames with
    many settings pay for detection once; ``calls`` counts what each pipeline asked for (``detect_every``).
    """

    def __init__(self, detector: PersonDetector, cache: dict[bytes, list[PersonDetection]]) -> None:
        self.detector = detector
        self.score_threshold = detector.score_threshold
        self._cache = cache
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[PersonDetection]:
        self.calls += 1
        key = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self.detector.detect(image)
        return list(found)


@pytest.fixture(scope="session")
def recorded_detector(detector: PersonDetector) -> Callable[[], RecordedDetector]:
    """A fresh call counter over one shared cache of the real detector's results."""
    cache: dict[bytes, list[PersonDetection]] = {}
    return lambda: RecordedDetector(detector, cache)

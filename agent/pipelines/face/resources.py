"""The face pipeline's resources, also used by the member commands and the CLI: the gallery and the analyzer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agent.identity.gallery import Gallery
from agent.identity.keys import load_key
from agent.pipelines.face.settings import FaceSettings

if TYPE_CHECKING:
    from agent.pipelines.shared import ModelOptions
    from models.face.analyzer import FaceAnalyzer


def gallery_path(state_dir: Path) -> Path:
    return state_dir / "identity" / "gallery.db"


def open_gallery(settings: FaceSettings, state_dir: Path) -> Gallery:
    """The terminal's gallery, opened with the key from credential / env / key file."""
    from models.face.analyzer import EMBEDDER_MODELS

    key = load_key(settings.key_env, settings.key_credential, settings.key_file)
    return Gallery(gallery_path(state_dir), key, EMBEDDER_MODELS[settings.embedder])


def member_threshold(settings: FaceSettings, members: int) -> float:
    """The cosine a member's template must reach, for a gallery of ``members`` (``threshold_per_gallery``)."""
    from models.face.calibrate import gallery_threshold

    if not settings.threshold_per_gallery:
        return settings.match_threshold
    return gallery_threshold(settings.match_threshold, members)


def load_analyzer(settings: FaceSettings, models: ModelOptions) -> FaceAnalyzer:
    """Detector, quality gates, liveness and embedder as the settings say (onnxruntime sessions, cached)."""
    from models.face.analyzer import FaceAnalyzer
    from models.face.quality import QualityThresholds

    return FaceAnalyzer.load(
        models.directory,
        list(models.providers),
        models.threads,
        detector_model=settings.detector_model,
        embedder=settings.embedder,
        detection_threshold=settings.detection_threshold,
        detection_max_side=settings.detection_max_side,
        thresholds=QualityThresholds(
            min_face_px=settings.min_face_px, min_sharpness=settings.min_sharpness, max_yaw=settings.max_yaw
        ),
    )

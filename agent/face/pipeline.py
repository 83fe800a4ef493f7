"""FacePipeline: one per camera; frames in, ``shopper.identified`` / ``visitor.seen`` / ``spoof.suspected`` out."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

import agent.face.events  # noqa: F401 - registers the event types
from agent.config.pipelines import FacePipeline as FaceSettings
from agent.events import EventBody
from agent.face.tracker import DecisionSettings, FaceTracker
from agent.identity.gallery import Gallery
from agent.identity.keys import load_key
from agent.runtime.pipeline import Pipeline, RuntimeContext
from drivers.base import Frame
from drivers.registry import DeviceKind
from models.face.analyzer import EMBEDDER_MODELS, FaceAnalyzer
from models.face.match import Match, match
from models.face.quality import QualityThresholds

if TYPE_CHECKING:
    from agent.config.schema import StoreConfig

logger = logging.getLogger(__name__)

GALLERY_SERVICE = "identity.gallery"


def gallery_path(state_dir: Path) -> Path:
    return state_dir / "identity" / "gallery.db"


def open_gallery(settings: FaceSettings, state_dir: Path) -> Gallery:
    """The terminal's gallery, opened with the key from credential / env / key file."""
    key = load_key(settings.key_env, settings.key_credential, settings.key_file)
    return Gallery(gallery_path(state_dir), key, EMBEDDER_MODELS[settings.embedder])


def load_analyzer(config: StoreConfig, models_dir: Path) -> FaceAnalyzer:
    s = config.pipelines.face
    return FaceAnalyzer.load(
        models_dir,
        config.models.providers,
        config.models.threads,
        detector_model=s.detector_model,
        embedder=s.embedder,
        detection_threshold=s.detection_threshold,
        detection_max_side=s.detection_max_side,
        thresholds=QualityThresholds(min_face_px=s.min_face_px, min_sharpness=s.min_sharpness, max_yaw=s.max_yaw),
    )


class FacePipeline(Pipeline[Frame]):
    source_kind: ClassVar[DeviceKind] = "camera"

    def __init__(self, source: str, config: StoreConfig, ctx: RuntimeContext) -> None:
        super().__init__("face", source)
        self.settings = config.pipelines.face
        self.config = config
        self.ctx = ctx
        self.gallery: Gallery = ctx.service(GALLERY_SERVICE, lambda: open_gallery(self.settings, ctx.state_dir))
        self.analyzer: FaceAnalyzer | None = None
        decision = DecisionSettings(
            min_frames=self.settings.min_frames,
            best_frames=self.settings.best_frames,
            liveness_threshold=self.settings.liveness_threshold,
            track_timeout_s=self.settings.track_timeout_s,
        )
        self.tracker = FaceTracker(source, decision, self._match)

    def _match(self, embedding: npt.NDArray[np.float32]) -> Match | None:
        found = match(embedding, self.gallery.matrix(), self.settings.match_threshold, self.settings.match_margin)
        if found is not None:
            self.gallery.record("match", found.member_id, {"camera": self.source, "score": round(found.score, 4)})
        return found

    def warm_up(self) -> None:
        self.analyzer = load_analyzer(self.config, self.ctx.models_dir)
        self.gallery.enforce_retention()
        self.analyzer.analyse(np.zeros((480, 640, 3), np.uint8))

    def process(self, item: Frame) -> Iterable[EventBody]:
        if self.analyzer is None:
            self.warm_up()
        assert self.analyzer is not None
        observations = self.analyzer.analyse(np.asarray(item.image))
        return self.tracker.update(observations, item.capture.mono_ns / 1e9, item.capture.wall_time)

    def finish(self) -> Iterable[EventBody]:
        self.tracker.tracks.clear()
        return ()


def build(config: StoreConfig, ctx: RuntimeContext) -> list[Pipeline[Any]]:
    settings = config.pipelines.face
    cameras = settings.cameras or sorted(config.device_names("camera"))
    return [FacePipeline(camera, config, ctx) for camera in cameras]

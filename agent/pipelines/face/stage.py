"""The face stage: one per camera; frames in, ``shopper.identified`` / ``visitor.seen`` / ``spoof.suspected`` out."""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.events import EventBody
from agent.pipelines.face.events import ShopperIdentified
from agent.pipelines.face.resources import load_analyzer, member_threshold
from agent.pipelines.face.tracker import Box, DecisionSettings, FaceTracker
from agent.pipelines.stage import Stage
from drivers.base import Frame
from models.face.match import Match, match

if TYPE_CHECKING:
    from agent.identity.gallery import Gallery
    from agent.pipelines.face.settings import FaceSettings
    from agent.pipelines.shared import Shared
    from models.face.analyzer import FaceAnalyzer

logger = logging.getLogger(__name__)

#: Face snapshots (``privacy.egress.face_snapshots``): longer side and JPEG quality, small enough for an event.
SNAPSHOT_SIDE = 112
SNAPSHOT_QUALITY = 80


def face_snapshot(image: npt.NDArray[np.uint8], box: Box, margin: float = 0.2) -> str:
    """A base64 JPEG of the face at ``box`` (x, y, w, h) with a margin, shrunk to ``SNAPSHOT_SIDE``."""
    x, y, w, h = box
    height, width = image.shape[:2]
    x0, y0 = max(0, int(x - margin * w)), max(0, int(y - margin * h))
    x1, y1 = min(width, int(x + w * (1 + margin))), min(height, int(y + h * (1 + margin)))
    crop = image[y0:y1, x0:x1]
    scale = SNAPSHOT_SIDE / max(crop.shape[:2])
    small = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else crop
    ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, SNAPSHOT_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding of a face snapshot failed")
    return base64.b64encode(jpeg.tobytes()).decode("ascii")


class FaceStage(Stage[Frame]):
    SHED_STEPS = ("face.detector_stride",)

    def __init__(self, source: str, settings: FaceSettings, shared: Shared, gallery: Gallery) -> None:
        super().__init__("face", source)
        self.settings = settings
        self.shared = shared
        self.gallery = gallery
        self.analyzer: FaceAnalyzer | None = None
        decision = DecisionSettings(
            min_frames=settings.min_frames,
            best_frames=settings.best_frames,
            liveness_threshold=settings.liveness_threshold,
            track_timeout_s=settings.track_timeout_s,
            anonymous_track_s=shared.privacy.anonymous_track_s,
        )
        self.tracker = FaceTracker(source, decision, self._match)
        self._frames = 0

    def _match(self, embedding: npt.NDArray[np.float32]) -> Match | None:
        matrix = self.gallery.matrix()
        threshold = member_threshold(self.settings, len(matrix.members))
        found = match(embedding, matrix, threshold, self.settings.match_margin)
        if found is not None:
            self.gallery.record("match", found.member_id, {"camera": self.source, "score": round(found.score, 4)})
        return found

    def warm_up(self) -> None:
        self.analyzer = load_analyzer(self.settings, self.shared.models)
        self.analyzer.analyse(np.zeros((480, 640, 3), np.uint8))

    def process(self, item: Frame) -> Iterable[EventBody]:
        if self.analyzer is None:
            self.warm_up()
        assert self.analyzer is not None
        image = np.asarray(item.image)
        self.shared.frames.put(self.source, item.capture.seq, image, item.capture.mono_ns / 1e9)
        self._frames += 1
        if "face.detector_stride" in self.shedding and self._frames % 2:
            return []  # overload: faces on every 2nd frame; a decision takes min_frames of them
        observations = self.analyzer.analyse(image, wanted=lambda det: not self.tracker.decided_at(det.box))
        events = self.tracker.update(observations, item.capture.mono_ns / 1e9, item.capture.wall_time)
        return [self._identified(e, image) if isinstance(e, ShopperIdentified) else e for e in events]

    def _identified(self, event: ShopperIdentified, image: npt.NDArray[np.uint8]) -> ShopperIdentified:
        """Let speech and the people tracks know who is here; attach a snapshot where the store opted in."""
        self.shared.presence.seen(event.member_id)
        box = self.tracker.box_of(event.track_id)
        if box is None:
            return event
        identities = self.shared.identities
        person = identities.track_at(self.source, box[0] + box[2] / 2, box[1] + box[3] / 2)
        if person is not None:
            confidence = min(max(event.confidence, 0.0), 1.0)
            identities.assign_identity(self.source, person, event.member_id, "face", confidence)
            logger.debug("camera %s: person track %s identified by face", self.source, person)
        if self.shared.privacy.face_snapshots:
            return dataclasses.replace(event, snapshot=face_snapshot(image, box))
        return event

    def finish(self) -> Iterable[EventBody]:
        self.tracker.tracks.clear()
        return ()


def build(settings: FaceSettings, shared: Shared) -> list[Stage[Any]]:
    if shared.gallery is None:
        raise RuntimeError("the face pipeline needs the member gallery (the wiring opens it when face is enabled)")
    gallery = shared.gallery
    return [
        FaceStage(camera, settings, shared, gallery) for camera in shared.devices.sources(settings.cameras, "camera")
    ]

"""FacePipeline: one per camera; frames in, ``shopper.identified`` / ``visitor.seen`` / ``spoof.suspected`` out."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from agent.config.pipelines import FacePipeline as FaceSettings
from agent.events import EventBody
from agent.face.events import ShopperIdentified
from agent.face.tracker import DecisionSettings, FaceTracker
from agent.identity import MEMBER_AT_TERMINAL_SERVICE
from agent.identity.enrollment import enforce_retention, register_erasure_hook, unregister_erasure_hook
from agent.identity.gallery import Gallery
from agent.identity.keys import load_key
from agent.runtime.pipeline import Pipeline, RuntimeContext
from agent.scene.identity import SERVICE_NAME as FUSION_SERVICE
from drivers.base import Frame
from drivers.registry import DeviceKind
from models.face.analyzer import EMBEDDER_MODELS, FaceAnalyzer
from models.face.match import Match, match
from models.face.quality import QualityThresholds

if TYPE_CHECKING:
    from agent.config.schema import StoreConfig

logger = logging.getLogger(__name__)

GALLERY_SERVICE = "identity.gallery"
#: The newest frame of each face camera, for enrolment at a kiosk (``enroll-member`` with ``camera``).
FRAMES_SERVICE = "face.latest_frames"


class LatestFrames:
    """The newest frame per camera (a reference to the driver's immutable copy; nothing is written anywhere)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frames: dict[str, tuple[int, npt.NDArray[np.uint8]]] = {}

    def put(self, camera: str, seq: int, image: npt.NDArray[np.uint8]) -> None:
        with self._cond:
            self._frames[camera] = (seq, image)
            self._cond.notify_all()

    def cameras(self) -> list[str]:
        with self._cond:
            return sorted(self._frames)

    def collect(self, camera: str, count: int, timeout_s: float) -> list[npt.NDArray[np.uint8]]:
        """Up to ``count`` distinct frames that arrive after the call (waits at most ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        frames: list[npt.NDArray[np.uint8]] = []
        with self._cond:
            last = self._frames.get(camera, (-1, None))[0]
            while len(frames) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
                seq, image = self._frames.get(camera, (-1, None))
                if image is not None and seq != last:
                    frames.append(image)
                    last = seq
        return frames


class RecentMember:
    """The member last identified at this terminal, for ``window_s`` seconds; forgotten when erased.

    Called as ``recent()`` from other pipelines' threads: member id or None.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._member: str | None = None
        self._at = 0.0

    def seen(self, member_id: str, mono_s: float | None = None) -> None:
        with self._lock:
            self._member, self._at = member_id, time.monotonic() if mono_s is None else mono_s

    def forget(self, member_id: str) -> int:
        """Erasure hook: drop the member if they are the one remembered (no queued items: returns 0)."""
        with self._lock:
            if self._member == member_id:
                self._member = None
        return 0

    def __call__(self) -> str | None:
        with self._lock:
            if self._member is not None and time.monotonic() - self._at <= self.window_s:
                return self._member
            return None


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
        self.gallery: Gallery = ctx.service(GALLERY_SERVICE, self._open_gallery, close=Gallery.close)
        self.analyzer: FaceAnalyzer | None = None
        decision = DecisionSettings(
            min_frames=self.settings.min_frames,
            best_frames=self.settings.best_frames,
            liveness_threshold=self.settings.liveness_threshold,
            track_timeout_s=self.settings.track_timeout_s,
        )
        self.tracker = FaceTracker(source, decision, self._match)
        self.recent: RecentMember = ctx.service(
            MEMBER_AT_TERMINAL_SERVICE, self._recent_member, close=lambda recent: unregister_erasure_hook(recent.forget)
        )
        self.frames: LatestFrames = ctx.service(FRAMES_SERVICE, LatestFrames)

    def _open_gallery(self) -> Gallery:
        """The shared gallery, with members whose consent expired erased first (once per agent start)."""
        gallery = open_gallery(self.settings, self.ctx.state_dir)
        enforce_retention(gallery)
        return gallery

    def _recent_member(self) -> RecentMember:
        recent = RecentMember(self.settings.member_window_s)
        register_erasure_hook(recent.forget)
        return recent

    def _match(self, embedding: npt.NDArray[np.float32]) -> Match | None:
        found = match(embedding, self.gallery.matrix(), self.settings.match_threshold, self.settings.match_margin)
        if found is not None:
            self.gallery.record("match", found.member_id, {"camera": self.source, "score": round(found.score, 4)})
        return found

    def warm_up(self) -> None:
        self.analyzer = load_analyzer(self.config, self.ctx.models_dir)
        self.analyzer.analyse(np.zeros((480, 640, 3), np.uint8))

    def process(self, item: Frame) -> Iterable[EventBody]:
        if self.analyzer is None:
            self.warm_up()
        assert self.analyzer is not None
        image = np.asarray(item.image)
        self.frames.put(self.source, item.capture.seq, image)
        observations = self.analyzer.analyse(image, wanted=lambda det: not self.tracker.decided_at(det.box))
        events = self.tracker.update(observations, item.capture.mono_ns / 1e9, item.capture.wall_time)
        for event in events:
            if isinstance(event, ShopperIdentified):
                self._identified(event)
        return events

    def _identified(self, event: ShopperIdentified) -> None:
        """Let the speech pipeline and the people tracks know who is here."""
        self.recent.seen(event.member_id)
        fusion = self.ctx.services.get(FUSION_SERVICE)
        box = self.tracker.box_of(event.track)
        if fusion is None or box is None:
            return
        person = fusion.track_at(self.source, box[0] + box[2] / 2, box[1] + box[3] / 2)
        if person is not None:
            fusion.assign_identity(self.source, person, event.member_id, "face", min(max(event.confidence, 0.0), 1.0))
            logger.debug("camera %s: person track %s identified by face", self.source, person)

    def finish(self) -> Iterable[EventBody]:
        self.tracker.tracks.clear()
        return ()


def build(config: StoreConfig, ctx: RuntimeContext) -> list[Pipeline[Any]]:
    settings = config.pipelines.face
    cameras = settings.cameras or sorted(config.device_names("camera"))
    return [FacePipeline(camera, config, ctx) for camera in cameras]

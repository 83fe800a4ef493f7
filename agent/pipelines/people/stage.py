"""The people pipeline of one camera: detect (every N frames), track, analyse the scene, re-link members.

Detection runs every ``detect_every`` frames and the tracker predicts in
between, which halves (or better) the CPU per camera. Pose and appearance run
only for tracks carrying a member identity, and for new tracks while an
identified member's track is waiting to be re-linked: anonymous people cost
nothing extra and leave no signature.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from agent.events import EventBody
from agent.pipelines.people.analytics import AnalyticsSettings, SceneAnalyzer
from agent.pipelines.people.geometry import LineGeometry, Point, ZoneGeometry, resolve_points
from agent.pipelines.people.reid import LostMember, TrackSignature
from agent.pipelines.people.settings import OVERHEAD, PeopleScene
from agent.pipelines.people.tracker import ByteTracker, Track, TrackerSettings
from agent.pipelines.stage import Stage
from agent.pipelines.tracks import person_track
from drivers.base import Frame
from models.people import AppearanceEmbedder, PersonDetector, PoseEstimator, TiledPersonDetector, TileSettings
from models.people.pose import Keypoints
from models.people.tiling import Detects
from models.runtime import session_for

if TYPE_CHECKING:
    import onnxruntime as ort

    from agent.pipelines.people.settings import PeopleSettings
    from agent.pipelines.shared import PersonTrackInbox, ReidStore, Shared, TrackIdentities

logger = logging.getLogger(__name__)

M = TypeVar("M")


class Lazy(Generic[M]):
    """A model loaded on its first use and shared by every camera's stage.

    Pose and appearance run only for tracks carrying a member (and new tracks while a member's track waits to
    be re-linked): a terminal whose people cameras never see an identified member never pays their memory
    (MoveNet and OSNet: about 26 + 15 MB at load, docs/performance.md). The first use pays their load once, on
    that frame.
    """

    def __init__(self, load: Callable[[], M]) -> None:
        self._load = load
        self._model: M | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> M:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model


def _model(held: M | Lazy[M] | None) -> M | None:
    return held.get() if isinstance(held, Lazy) else held


def build_scene(
    camera: str, scene: PeopleScene, width: int, height: int
) -> tuple[list[ZoneGeometry], list[LineGeometry]]:
    """Resolve a camera's configured zones and lines to pixels for one frame size."""
    where = f"pipelines.people.scenes.{camera}"
    zones = [
        ZoneGeometry(
            z.name, resolve_points(z.points, scene.normalized, width, height, f"{where}.zones[{i}].points"), z.queue
        )
        for i, z in enumerate(scene.zones)
    ]
    lines = []
    for i, ln in enumerate(scene.lines):
        a, b = resolve_points(ln.points, scene.normalized, width, height, f"{where}.lines[{i}].points")
        if a == b:
            raise ValueError(f"{where}.lines[{i}].points: the two ends are the same point")
        lines.append(LineGeometry(ln.name, a, b, ln.invert))
    return zones, lines


def anchor_of(box: tuple[float, float, float, float], anchor: str) -> Point:
    """The point of a box tested against zones and lines: its feet (bottom) or its centre. (A person cut by the
    bottom of the frame has no feet in view: zones reaching that edge want ``anchor: centre``; switching the
    point as a person steps into view would make the point jump across lines.)"""
    return ((box[0] + box[2]) / 2, box[3] if anchor == "bottom" else (box[1] + box[3]) / 2)


class PeopleStage(Stage[Frame]):
    SHED_STEPS = ("people.detector_stride", "people.reid_rate")

    def __init__(
        self,
        camera: str,
        settings: PeopleSettings,
        detector: PersonDetector,
        pose: PoseEstimator | Lazy[PoseEstimator] | None,
        appearance: AppearanceEmbedder | Lazy[AppearanceEmbedder] | None,
        fusion: TrackIdentities,
        reid: ReidStore,
        tracks_out: PersonTrackInbox | None = None,
        anonymous_id_s: float = 300.0,
    ) -> None:
        super().__init__("people", camera)
        self.tracks_out = tracks_out  # the product pipeline's inbox, when it runs
        self.anonymous_id_s = anonymous_id_s  # privacy.retention.anonymous_track_s
        self.settings = settings
        self.scene = settings.scenes.get(camera, PeopleScene())
        self.detector: Detects = detector
        cols, rows = self.scene.tile_grid
        if cols * rows > 1:
            self.detector = TiledPersonDetector(detector, TileSettings(cols, rows))
        self.pose, self.appearance = pose, appearance
        self.fusion, self.reid = fusion, reid
        self.lost_track_s = settings.lost_track_s
        high, new = settings.track_high_score, settings.new_track_score
        if self.scene.view == "overhead":
            high, new = float(OVERHEAD["track_high_score"]), float(OVERHEAD["new_track_score"])  # type: ignore[arg-type]
            self.lost_track_s = float(OVERHEAD["lost_track_s"])  # type: ignore[arg-type]
        self.tracker = ByteTracker(
            TrackerSettings(high_score=high, low_score=min(settings.score_threshold, high), new_track_score=new)
        )
        self._salt = os.urandom(3).hex()  # anonymous ids differ on every start
        self._serial = itertools.count(1)
        self._keys: dict[int, tuple[str, float]] = {}  # tracker id -> (anonymous id, when it was issued)
        self._analyzer: SceneAnalyzer | None = None
        self._size: tuple[int, int] | None = None
        self._frames = 0
        self._last_time: float | None = None
        self._dt = 0.1
        self._signatures: dict[str, TrackSignature] = {}
        self._candidates: set[str] = set()  # new tracks being compared against lost members
        self._last_anchor: dict[str, tuple[float, float]] = {}  # normalised centre, for re-link plausibility
        self._last_velocity: dict[str, tuple[float, float]] = {}  # normalised units per second
        self._last_wall = 0.0
        self._poses: dict[str, Keypoints] = {}  # keypoints computed on this frame, by track key

    def key(self, track: Track) -> str:
        """The track's anonymous id in events (a new one after ``anonymous_id_s``, see ``_rotate_anonymous``)."""
        entry = self._keys.get(track.track_id)
        if entry is None:
            entry = self._keys[track.track_id] = (f"{self._salt}-{next(self._serial)}", self._last_time or 0.0)
        return entry[0]

    def _rotate_anonymous(self, tracks: list[Track], now: float) -> None:
        """An anonymous id lives at most ``anonymous_id_s``: an older anonymous track gets a new, unrelated id.

        The scene state (zone presence, dwell, line side) follows the person; nothing gathered under the old id
        is kept. A member's track keeps its id: it is not anonymous.
        """
        for track in tracks:
            entry = self._keys.get(track.track_id)
            if entry is None or now - entry[1] < self.anonymous_id_s:
                continue
            old = entry[0]
            if self.fusion.member_of(self.source, old) is not None:
                continue
            new = f"{self._salt}-{next(self._serial)}"
            self._keys[track.track_id] = (new, now)
            if self._analyzer is not None:
                self._analyzer.rekey(old, new)
            for store in (self._last_anchor, self._last_velocity):
                if old in store:
                    store[new] = store.pop(old)
            self._signatures.pop(old, None)
            self._candidates.discard(old)

    def _setup(self, frame: Frame) -> SceneAnalyzer:
        size = (frame.width, frame.height)
        if self._analyzer is None or size != self._size:
            zones, lines = build_scene(self.source, self.scene, *size)
            s = self.settings
            self._analyzer = SceneAnalyzer(
                self.source,
                zones,
                lines,
                AnalyticsSettings(
                    s.enter_frames, s.line_deadband * frame.height, s.occupancy_min_interval_s, s.occupancy_every_s
                ),
                identity=lambda track_id: self.fusion.identity(self.source, track_id),
                queue_min_wait_s={z.name: z.queue_min_wait_s for z in self.scene.zones},
            )
            self._size = size
        return self._analyzer

    def process(self, item: Frame) -> Iterable[EventBody]:
        analyzer = self._setup(item)
        now = item.capture.mono_ns / 1e9
        wall = item.capture.wall_time
        if self._last_time is not None and now > self._last_time:
            self._dt = 0.9 * self._dt + 0.1 * (now - self._last_time) if self._frames > 2 else now - self._last_time
        self._last_time, self._last_wall = now, wall
        every = self.settings.detect_every * (2 if "people.detector_stride" in self.shedding else 1)
        self.tracker.max_lost_updates = max(1, round(self.lost_track_s / (self._dt * every)))
        if self._frames % every == 0:
            detections = self.detector.detect(np.asarray(item.image))
            tracks = self.tracker.update(detections)
        else:
            tracks = self.tracker.predict()
        self._frames += 1
        events: list[EventBody] = []
        ended = [self.key(t) for t in self.tracker.removed]
        for track in self.tracker.removed:
            self._keys.pop(track.track_id, None)
        if ended:  # first: their zone events still carry the identity, and they no longer count as inside
            events.extend(analyzer.end_tracks(now, wall, ended))
        self._conclude(ended, now)
        self._rotate_anonymous(self.tracker.tracks, now)  # lost ones too: their id is still in use
        self._reid(item, tracks, now)
        anchors = {self.key(t): anchor_of(t.box, self.scene.anchor_point) for t in tracks}
        events.extend(analyzer.update(now, wall, anchors))
        self.fusion.publish_tracks(self.source, {self.key(t): t.box for t in tracks})
        self._offer(item, tracks)
        return events

    def _offer(self, frame: Frame, tracks: list[Track]) -> None:
        """Hand this frame's tracks (normalised, wrists where pose ran) to the product pipeline, if it runs."""
        sink = self.tracks_out
        if sink is None:
            return
        size = (frame.width, frame.height)
        offered = []
        for t in tracks:
            key = self.key(t)
            pose = self._poses.get(key)
            xy, scores = (pose.xy, pose.score) if pose is not None else (None, None)
            offered.append(person_track(key, t.box, xy, scores, size, self.fusion.member_of(self.source, key)))
        sink.offer_tracks(self.source, frame.capture.wall_time, offered)

    def _conclude(self, ended: list[str], now: float) -> None:
        """Lost-for-good tracks: keep an identified member's signature for re-linking, drop the rest."""
        for track_id in ended:
            signature = self._signatures.pop(track_id, None)
            last = self._last_anchor.pop(track_id, (0.5, 0.5))
            velocity = self._last_velocity.pop(track_id, (0.0, 0.0))
            self._candidates.discard(track_id)
            member = self.fusion.member_of(self.source, track_id)
            appearance = signature.appearance() if signature else None
            if member is None or appearance is None or signature is None:
                self.fusion.forget(self.source, track_id)
                continue
            lost = LostMember(self.source, track_id, member, appearance, signature.gait(), last, velocity, now)
            self.reid.add_lost(lost)
            logger.debug("member track %s lost; kept for re-linking", track_id)
        # The re-link memory is shared by the terminal's cameras: forget whichever camera's member expired.
        for expired in self.reid.expire(now):
            self.fusion.forget(expired.camera, expired.track_id)

    def _reid(self, frame: Frame, tracks: list[Track], now: float) -> None:
        self._poses = {}
        reid_every = self.settings.reid_every * (2 if "people.reid_rate" in self.shedding else 1)
        if self.appearance is None or not tracks or self._frames % reid_every:
            return
        w, h = frame.width, frame.height
        pending = self.reid.pending()
        chosen: list[tuple[str, Track]] = []
        for t in tracks:
            key = self.key(t)
            if self.fusion.member_of(self.source, key) is not None:
                chosen.append((key, t))
            elif pending and t.hits <= 40:  # young anonymous track: maybe a member coming back
                chosen.append((key, t))
                self._candidates.add(key)
        if not chosen:
            return
        image = np.asarray(frame.image)
        appearance, pose = _model(self.appearance), _model(self.pose)
        assert appearance is not None
        embeddings = appearance.embed(image, [t.box for _, t in chosen])
        for (key, t), emb in zip(chosen, embeddings, strict=True):
            keypoints = pose.estimate(image, t.box) if pose is not None else None
            if keypoints is not None:
                self._poses[key] = keypoints
            signature = self._signatures.setdefault(key, TrackSignature())
            signature.add(now, emb, keypoints)
            cx, cy = anchor_of(t.box, "centre")
            self._last_anchor[key] = (cx / w, cy / h)
            self._last_velocity[key] = (float(t.mean[4]) / w / self._dt, float(t.mean[5]) / h / self._dt)
            if key in self._candidates:
                link = self.reid.match(self.source, signature, self._last_anchor[key], now)
                if link is not None:
                    self._candidates.discard(key)
                    claim = self.fusion.relink(
                        (link.lost.camera, link.lost.track_id), (self.source, key), link.evidence
                    )
                    logger.info(
                        "track %s re-linked to lost track %s (score %.2f): %s",
                        key,
                        link.lost.track_id,
                        link.score,
                        claim,
                    )
                elif t.hits > 40:
                    self._candidates.discard(key)
                    self._signatures.pop(key, None)  # anonymous after all: forget what was gathered

    def finish(self) -> Iterable[EventBody]:
        if self._analyzer is None:
            return []
        ended = [self.key(t) for t in self.tracker.tracks]
        return self._analyzer.end_tracks(self._last_time or 0.0, self._last_wall, ended)


#: Person detector, pose, appearance (re-identification): the manifest models ``build`` loads.
MODELS = ("yolox-nano", "movenet-lightning", "osnet-x0.25-msmt17")


def build(settings: PeopleSettings, shared: Shared) -> list[Stage[Frame]]:
    models = shared.models
    providers, threads = list(models.providers), models.threads

    def session(name: str) -> ort.InferenceSession:
        return session_for(name, models.directory, providers, threads)

    detector = PersonDetector(session(MODELS[0]), settings.score_threshold)
    pose = Lazy(lambda: PoseEstimator(session(MODELS[1])))
    appearance = Lazy(lambda: AppearanceEmbedder(session(MODELS[2])))
    return [
        PeopleStage(
            c,
            settings,
            detector,
            pose,
            appearance,
            shared.identities,
            shared.reid,
            shared.tracks,
            shared.privacy.anonymous_track_s,
        )
        for c in shared.devices.sources(settings.cameras, "camera")
    ]

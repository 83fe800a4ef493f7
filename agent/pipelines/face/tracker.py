"""Per-camera face tracks and the decision over several frames (pure apart from the matcher it is given).

Nothing is decided from one frame: a track collects faces that passed the
quality gates and, once it has ``min_frames`` of them, fuses liveness (mean)
and embeddings (mean of the ``best_frames`` best by quality) and decides once:
spoof, member, or anonymous visitor. Visitor ids are random per track, so they
cannot be linked across cameras or days, and no template is kept for them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from agent.events import EventBody
from agent.pipelines.face.events import ShopperIdentified, SpoofSuspected, VisitorSeen
from models.face.analyzer import FaceObservation
from models.face.match import Match
from models.vectors import l2_normalise

Box = tuple[float, float, float, float]
Matcher = Callable[[npt.NDArray[np.float32]], Match | None]


@dataclass(frozen=True)
class DecisionSettings:
    min_frames: int = 3
    best_frames: int = 5
    liveness_threshold: float = 0.5
    track_timeout_s: float = 2.0
    iou_threshold: float = 0.2
    #: An anonymous track (not a member) older than this is ended, so its id never lives longer
    #: (``privacy.retention.anonymous_track_s``); the face then starts a new track with a new id.
    anonymous_track_s: float = 300.0


@dataclass
class Track:
    track_id: str
    box: Box
    last_seen: float
    good: list[tuple[float, float, npt.NDArray[np.float32]]] = field(default_factory=list)  # quality, liveness, emb
    decided: bool = False
    member: bool = False
    started: float = 0.0


def iou(a: Box, b: Box) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Associates faces frame to frame (greedy IoU) and emits one decision per track."""

    def __init__(self, camera: str, settings: DecisionSettings, matcher: Matcher) -> None:
        self.camera = camera
        self.settings = settings
        self.matcher = matcher
        self.tracks: list[Track] = []

    def box_of(self, track_id: str) -> Box | None:
        """Where the face track ``track_id`` was last seen (x, y, w, h), if it is still tracked."""
        return next((t.box for t in self.tracks if t.track_id == track_id), None)

    def decided_at(self, box: Box) -> bool:
        """Whether the face at ``box`` belongs to a live track that has already decided (no need to embed it)."""
        nearest = self._nearest(self.tracks, box)
        return nearest is not None and nearest.decided

    def _nearest(self, tracks: list[Track], box: Box) -> Track | None:
        """The track overlapping ``box`` most, if it overlaps by at least the IoU threshold."""
        best, best_iou = None, 0.0
        for track in tracks:
            overlap = iou(track.box, box)
            if best is None or overlap > best_iou:
                best, best_iou = track, overlap
        return best if best is not None and best_iou >= self.settings.iou_threshold else None

    def update(self, observations: list[FaceObservation], now: float, wall_time: float) -> list[EventBody]:
        limit = self.settings.anonymous_track_s
        self.tracks = [
            t
            for t in self.tracks
            if now - t.last_seen <= self.settings.track_timeout_s and (t.member or now - t.started <= limit)
        ]
        free = list(self.tracks)
        events: list[EventBody] = []
        for obs in sorted(observations, key=lambda o: -o.detection.size):
            box = obs.detection.box
            best = self._nearest(free, box)
            if best is None:
                best = Track(f"f-{secrets.token_hex(6)}", box, now, started=now)
                self.tracks.append(best)
            else:
                free.remove(best)
            best.box, best.last_seen = box, now
            if obs.quality.ok and obs.embedding is not None and obs.liveness is not None:
                best.good.append((obs.quality.score, obs.liveness, obs.embedding))
            if not best.decided and len(best.good) >= self.settings.min_frames:
                events.append(self._decide(best, wall_time))
        return events

    def _decide(self, track: Track, wall_time: float) -> EventBody:
        track.decided = True
        good, track.good = track.good, []  # embeddings are not kept once decided, spoof or not
        frames = len(good)
        liveness = float(np.mean([g[1] for g in good]))
        if liveness < self.settings.liveness_threshold:
            return SpoofSuspected(
                captured_at=wall_time, camera=self.camera, track_id=track.track_id, score=liveness, frames=frames
            )
        best = sorted(good, key=lambda g: -g[0])[: self.settings.best_frames]
        embedding = l2_normalise(np.mean([g[2] for g in best], axis=0))
        found = self.matcher(embedding)
        if found is None:
            return VisitorSeen(
                captured_at=wall_time, visitor_id=f"v-{secrets.token_hex(8)}", camera=self.camera, frames=frames
            )
        track.member = True
        return ShopperIdentified(
            captured_at=wall_time,
            member_id=found.member_id,
            confidence=found.score,
            margin=found.margin,
            liveness=liveness,
            camera=self.camera,
            track_id=track.track_id,
            frames=frames,
        )

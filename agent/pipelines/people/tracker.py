"""ByteTrack-style multi-object tracker: Kalman prediction, two-stage IoU association by score.

High-score detections are matched first to every live track (including ones
lost for a few frames); the remaining tracks then get a second chance with the
low-score detections, which is what keeps occluded people tracked
(Zhang et al., ByteTrack, 2022). Between detector runs ``predict`` advances
every track on its motion model, so detection can run every N frames.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.pipelines.people.assignment import linear_sum_assignment
from agent.pipelines.people.kalman import KalmanBoxFilter, Matrix, Vector, box_to_xyah, xyah_to_box
from models.people.detector import PersonDetection, iou_matrix

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


class TrackState(enum.Enum):
    TENTATIVE = "tentative"  # seen once; not yet reported
    TRACKED = "tracked"
    LOST = "lost"
    REMOVED = "removed"


@dataclass(frozen=True)
class TrackerSettings:
    high_score: float = 0.5  # first-stage detections
    low_score: float = 0.1  # second-stage detections (below high_score)
    new_track_score: float = 0.6  # a detection must score this to start a track
    match_iou: float = 0.2  # first stage: IoU needed to match
    second_match_iou: float = 0.5  # second stage (low-score detections)
    tentative_match_iou: float = 0.3
    max_lost_updates: int = 30  # detector runs a lost track is kept for re-association


@dataclass
class Track:
    track_id: int
    mean: Vector
    cov: Matrix
    state: TrackState = TrackState.TENTATIVE
    hits: int = 1
    lost_for: int = 0  # detector updates since last match
    matched_now: bool = True

    @property
    def box(self) -> Box:
        return xyah_to_box(self.mean)


class ByteTracker:
    """Tracks people on one camera; ids are small integers local to this tracker."""

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self.kf = KalmanBoxFilter()
        self.tracks: list[Track] = []
        #: Tracks that ended in the last predict/update, for the caller to conclude (empty after a predict).
        self.removed: list[Track] = []
        self._next_id = 1
        #: Detector runs a lost track is kept; the pipeline sets it from the frame rate.
        self.max_lost_updates = self.settings.max_lost_updates

    def predict(self) -> list[Track]:
        """Advance every live track one frame on its motion model (a frame without detection)."""
        self.removed = []
        for t in self.tracks:
            if t.state is TrackState.LOST:
                t.mean[7] = 0.0  # a lost track's height stops changing
            t.mean, t.cov = self.kf.predict(t.mean, t.cov)
            t.matched_now = False
        return self.active()

    def active(self) -> list[Track]:
        """Confirmed tracks currently seen (or predicted between detector runs)."""
        return [t for t in self.tracks if t.state is TrackState.TRACKED]

    def update(self, detections: Sequence[PersonDetection]) -> list[Track]:
        """Predict, then associate a detector run's output; returns the confirmed, currently matched tracks."""
        s = self.settings
        self.predict()
        boxes = np.array([d.box for d in detections], dtype=np.float32).reshape(-1, 4)
        scores = np.array([d.score for d in detections], dtype=np.float32)
        high = np.flatnonzero(scores >= s.high_score)
        low = np.flatnonzero((scores >= s.low_score) & (scores < s.high_score))

        pool = [t for t in self.tracks if t.state in (TrackState.TRACKED, TrackState.LOST)]
        tentative = [t for t in self.tracks if t.state is TrackState.TENTATIVE]

        matches, rest_tracks, rest_high = self._associate(pool, boxes[high], s.match_iou, scores[high])
        for ti, di in matches:
            self._apply(pool[ti], boxes[high[di]])
        second_pool = [pool[i] for i in rest_tracks if pool[i].state is TrackState.TRACKED]
        matches2, rest2, _ = self._associate(second_pool, boxes[low], s.second_match_iou, None)
        for ti, di in matches2:
            self._apply(second_pool[ti], boxes[low[di]])
        for i in rest2:
            t = second_pool[i]
            t.state = TrackState.LOST
        for i in rest_tracks:
            if pool[i].state is TrackState.LOST and not pool[i].matched_now:
                pool[i].lost_for += 1

        remaining_high = high[rest_high]
        matches3, rest_tent, rest_high2 = self._associate(
            tentative, boxes[remaining_high], s.tentative_match_iou, scores[remaining_high]
        )
        for ti, di in matches3:
            self._apply(tentative[ti], boxes[remaining_high[di]])
            tentative[ti].state = TrackState.TRACKED
        for i in rest_tent:
            tentative[i].state = TrackState.REMOVED

        for di in remaining_high[rest_high2]:
            if scores[di] >= s.new_track_score:
                b = boxes[di]
                self._start((float(b[0]), float(b[1]), float(b[2]), float(b[3])))

        for t in self.tracks:
            if t.state is TrackState.LOST and t.lost_for > self.max_lost_updates:
                t.state = TrackState.REMOVED
        self.removed = [t for t in self.tracks if t.state is TrackState.REMOVED]
        self.tracks = [t for t in self.tracks if t.state is not TrackState.REMOVED]
        return [t for t in self.tracks if t.state is TrackState.TRACKED and t.matched_now]

    def _start(self, box: Box) -> None:
        mean, cov = self.kf.initiate(box_to_xyah(box))
        track = Track(self._next_id, mean, cov)
        self._next_id += 1
        self.tracks.append(track)

    def _apply(self, track: Track, box: npt.NDArray[np.float32]) -> None:
        b: Box = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        track.mean, track.cov = self.kf.update(track.mean, track.cov, box_to_xyah(b))
        track.hits += 1
        track.lost_for = 0
        track.matched_now = True
        if track.state is TrackState.LOST:
            track.state = TrackState.TRACKED

    @staticmethod
    def _associate(
        tracks: Sequence[Track],
        boxes: npt.NDArray[np.float32],
        min_iou: float,
        scores: npt.NDArray[np.float32] | None,
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        """Hungarian assignment on 1 - IoU (fused with the score, as ByteTrack does in stage one)."""
        if not len(tracks) or not len(boxes):
            return [], list(range(len(tracks))), list(range(len(boxes)))
        track_boxes = np.array([t.box for t in tracks], dtype=np.float32)
        iou = iou_matrix(track_boxes, boxes)
        sim = iou * scores[None, :] if scores is not None else iou
        cost = 1.0 - sim
        rows, cols = linear_sum_assignment(cost)
        matches = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]
        mt = {r for r, _ in matches}
        md = {c for _, c in matches}
        return (
            matches,
            [i for i in range(len(tracks)) if i not in mt],
            [j for j in range(len(boxes)) if j not in md],
        )

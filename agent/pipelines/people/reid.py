"""Re-identification of identified members: link a new track to a recently lost one.

Signatures (mean OSNet appearance embedding, gait signature from pose) are
collected only for tracks that carry a member identity, kept in memory for
``window_s`` after the track is lost, and dropped after. A new track is
compared to them once it has a few appearance samples; time and position
must be plausible (walking speed on the same camera; any position on
another camera of the terminal).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from agent.pipelines.people.gait import GaitSignature, gait_signature, gait_similarity
from models.people.pose import Keypoints
from models.vectors import l2_normalise

logger = logging.getLogger(__name__)

MIN_APPEARANCE_SAMPLES = 3
# Gait is far weaker than appearance: across viewpoints (gait_allinone, tests/scene/test_gait_allinone.py) the
# keypoint signature separates same from different people with an AUC of 0.57, appearance with 0.99.
GAIT_WEIGHT = 0.1
PLACE_WEIGHT = 0.25  # same camera: where the lost track was heading
APPEARANCE_FLOOR, APPEARANCE_CEIL = 0.4, 0.85  # cosine mapped to a 0..1 confidence between these


@dataclass
class TrackSignature:
    """What is gathered about one track while it is visible (in memory only)."""

    embeddings: deque[npt.NDArray[np.float32]] = field(default_factory=lambda: deque(maxlen=16))
    poses: deque[tuple[float, Keypoints]] = field(default_factory=lambda: deque(maxlen=48))

    def add(self, now: float, embedding: npt.NDArray[np.float32] | None, pose: Keypoints | None) -> None:
        if embedding is not None:
            self.embeddings.append(embedding)
        if pose is not None:
            self.poses.append((now, pose))

    def appearance(self) -> npt.NDArray[np.float32] | None:
        if not self.embeddings:
            return None
        return l2_normalise(np.mean(np.stack(self.embeddings), axis=0))

    def gait(self) -> GaitSignature | None:
        if not self.poses:
            return None
        times, poses = zip(*self.poses, strict=True)
        return gait_signature(list(times), list(poses))


@dataclass(frozen=True)
class LostMember:
    camera: str
    track_id: str
    member_id: str
    appearance: npt.NDArray[np.float32]
    gait: GaitSignature | None
    position: tuple[float, float]  # normalised centre where it was last seen
    velocity: tuple[float, float]  # normalised frame units per second when last seen
    lost_at: float


@dataclass(frozen=True)
class Relink:
    lost: LostMember
    score: float
    evidence: dict[str, float]  # per-modality confidence for the fusion


def appearance_confidence(cosine: float) -> float:
    return float(np.clip((cosine - APPEARANCE_FLOOR) / (APPEARANCE_CEIL - APPEARANCE_FLOOR), 0.0, 1.0))


def place_plausibility(lost: LostMember, position: tuple[float, float], gap_s: float) -> float:
    """0..1: how close the new track is to where the lost one was heading (same camera only)."""
    expected = (lost.position[0] + lost.velocity[0] * gap_s, lost.position[1] + lost.velocity[1] * gap_s)
    distance = float(np.hypot(position[0] - expected[0], position[1] - expected[1]))
    spread = 0.05 + 0.05 * gap_s  # the longer the gap, the less the motion model says
    return float(np.exp(-((distance / spread) ** 2)))


def link_score(
    appearance_a: npt.NDArray[np.float32],
    appearance_b: npt.NDArray[np.float32],
    gait_a: GaitSignature | None,
    gait_b: GaitSignature | None,
    place: float | None = None,
) -> tuple[float, dict[str, float]]:
    """Similarity of two signatures (0..1) and the per-modality confidences behind it.

    Weighted mean of the appearance cosine, the gait similarity (when both have one) and the place
    plausibility (same camera only); the identity modalities reported are appearance and gait.
    """
    cosine = float(np.dot(appearance_a, appearance_b))
    evidence = {"appearance": appearance_confidence(cosine)}
    parts = [(cosine, 1.0 - GAIT_WEIGHT - PLACE_WEIGHT)]
    if gait_a is not None and gait_b is not None:
        g = gait_similarity(gait_a, gait_b)
        evidence["gait"] = g
        parts.append((g, GAIT_WEIGHT))
    if place is not None:
        parts.append((place, PLACE_WEIGHT))
    total = sum(w for _, w in parts)
    return sum(v * w for v, w in parts) / total, evidence


class ReidMemory:
    """Lost identified tracks of every camera of this terminal (one instance, shared, thread-safe)."""

    def __init__(
        self,
        window_s: float = 30.0,
        threshold: float = 0.6,
        max_speed: float = 0.5,
        margin: float = 0.05,
        other_camera_threshold: float = 0.7,
    ) -> None:
        self.window_s = window_s
        self.threshold = threshold
        # Another camera has no place term to back the link: different people's clothes alone reach ~0.65.
        self.other_camera_threshold = other_camera_threshold
        self.max_speed = max_speed  # frame widths per second a walker can cover
        self.margin = margin
        self._lock = threading.Lock()
        self._lost: list[LostMember] = []

    def add_lost(self, lost: LostMember) -> None:
        with self._lock:
            self._lost.append(lost)

    def expire(self, now: float) -> list[LostMember]:
        """Drop (and return) lost members older than the window: their signatures are gone for good."""
        with self._lock:
            old = [m for m in self._lost if now - m.lost_at > self.window_s]
            self._lost = [m for m in self._lost if now - m.lost_at <= self.window_s]
        return old

    def pending(self) -> bool:
        with self._lock:
            return bool(self._lost)

    def forget_member(self, member_id: str) -> int:
        """Erasure hook: drop the member's kept signatures (appearance, gait); returns how many."""
        with self._lock:
            before = len(self._lost)
            self._lost = [m for m in self._lost if m.member_id != member_id]
            return before - len(self._lost)

    def match(self, camera: str, signature: TrackSignature, position: tuple[float, float], now: float) -> Relink | None:
        """The lost member this new track most plausibly is, or None; a match is consumed."""
        appearance = signature.appearance()
        if appearance is None or len(signature.embeddings) < MIN_APPEARANCE_SAMPLES:
            return None
        gait = signature.gait()
        with self._lock:
            scored: list[tuple[float, LostMember, dict[str, float], float]] = []
            for lost in self._lost:
                gap = now - lost.lost_at
                if gap < 0 or gap > self.window_s:
                    continue
                place = None
                needed = self.other_camera_threshold
                if lost.camera == camera:
                    needed = self.threshold
                    dist = float(np.hypot(position[0] - lost.position[0], position[1] - lost.position[1]))
                    if dist > 0.15 + self.max_speed * gap:
                        continue
                    place = place_plausibility(lost, position, gap)
                score, evidence = link_score(appearance, lost.appearance, gait, lost.gait, place)
                scored.append((score, lost, evidence, needed))
            if not scored:
                return None
            scored.sort(key=lambda s: -s[0])
            best_score, best, evidence, needed = scored[0]
            rival = next((s for s, m, _, _ in scored[1:] if m.member_id != best.member_id), None)
            if best_score < needed or (rival is not None and best_score - rival < self.margin):
                return None
            self._lost.remove(best)
        return Relink(best, best_score, evidence)

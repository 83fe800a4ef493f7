"""Identity fusion: who a person track is, from which modalities, with what confidence.

One instance per agent lives in ``Shared.identities``. The face pipeline and
card readers call :meth:`IdentityFusion.assign_identity` (from their own
threads); the people pipeline reads identities into its events and moves them
across re-links. Tracks never identified stay
anonymous and nothing is kept about them here.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

MODALITIES = ("face", "gait", "appearance", "card")
Box = tuple[float, float, float, float]


def fuse(modalities: dict[str, float]) -> float:
    """Noisy-OR of independent evidence: 1 - prod(1 - c). One strong modality dominates; agreement adds."""
    miss = 1.0
    for c in modalities.values():
        miss *= 1.0 - min(max(c, 0.0), 1.0)
    return 1.0 - miss


@dataclass(frozen=True, kw_only=True)
class IdentityClaim:
    """Who a track is, and how sure each modality and the fusion of them are (0..1); carried by scene events."""

    member_id: str
    fused_confidence: float
    modalities: dict[str, float]


@dataclass
class _TrackIdentity:
    member_id: str
    modalities: dict[str, float] = field(default_factory=dict)

    def claim(self) -> IdentityClaim:
        return IdentityClaim(
            member_id=self.member_id,
            fused_confidence=round(fuse(self.modalities), 4),
            modalities={k: round(v, 4) for k, v in sorted(self.modalities.items())},
        )


class IdentityFusion:
    """Thread-safe map (camera, track id) -> identity, plus where each camera's tracks are now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], _TrackIdentity] = {}
        self._boxes: dict[str, dict[str, Box]] = {}

    def assign_identity(
        self, camera: str, track_id: str, member_id: str, modality: str, confidence: float
    ) -> IdentityClaim:
        """Attach ``member_id`` to a track with one modality's confidence; returns the fused claim.

        A different member replaces the current one only with a higher confidence than the current fusion
        (a confident face beats a weak earlier guess); otherwise the assignment is ignored.
        """
        if modality not in MODALITIES:
            raise ValueError(f"assign_identity: unknown modality {modality!r} (known: {', '.join(MODALITIES)})")
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"assign_identity: confidence must be within 0..1, got {confidence}")
        if not member_id:
            raise ValueError("assign_identity: member_id is empty")
        with self._lock:
            key = (camera, track_id)
            current = self._ids.get(key)
            if current is None or (current.member_id != member_id and confidence > fuse(current.modalities)):
                if current is not None:
                    logger.info(
                        "track %s/%s re-identified by %s (confidence %.2f)", camera, track_id, modality, confidence
                    )
                current = self._ids[key] = _TrackIdentity(member_id)
            elif current.member_id != member_id:
                logger.info("track %s/%s: ignoring weaker %s identity (%.2f)", camera, track_id, modality, confidence)
                return current.claim()
            current.modalities[modality] = max(confidence, current.modalities.get(modality, 0.0))
            return current.claim()

    def identity(self, camera: str, track_id: str) -> IdentityClaim | None:
        with self._lock:
            found = self._ids.get((camera, track_id))
            return found.claim() if found else None

    def member_of(self, camera: str, track_id: str) -> str | None:
        with self._lock:
            found = self._ids.get((camera, track_id))
            return found.member_id if found else None

    def relink(self, old: tuple[str, str], new: tuple[str, str], evidence: dict[str, float]) -> IdentityClaim | None:
        """Move an identity from a lost track to the track it was re-linked to.

        The carried modalities keep their values scaled by how sure the re-link is; the re-link's own
        evidence (gait, appearance similarity) is added as modalities.
        """
        with self._lock:
            source = self._ids.pop(old, None)
            if source is None:
                return None
            link = fuse(evidence)
            carried = {m: c * link for m, c in source.modalities.items() if m not in evidence}
            target = _TrackIdentity(source.member_id, {**carried, **evidence})
            self._ids[new] = target
            return target.claim()

    def forget(self, camera: str, track_id: str) -> None:
        with self._lock:
            self._ids.pop((camera, track_id), None)

    def forget_member(self, member_id: str) -> int:
        """Erasure hook: every track carrying the member becomes anonymous again; returns how many."""
        with self._lock:
            keys = [k for k, v in self._ids.items() if v.member_id == member_id]
            for key in keys:
                del self._ids[key]
        return len(keys)

    def publish_tracks(self, camera: str, boxes: dict[str, Box]) -> None:
        """The people pipeline's current boxes for one camera, so others can find the track under a face."""
        with self._lock:
            self._boxes[camera] = dict(boxes)

    def track_at(self, camera: str, x: float, y: float) -> str | None:
        """The current track whose box contains pixel (x, y), the tightest box if several overlap."""
        with self._lock:
            boxes = self._boxes.get(camera, {})
            hits = [
                (abs((b[2] - b[0]) * (b[3] - b[1])), t)
                for t, b in boxes.items()
                if b[0] <= x <= b[2] and b[1] <= y <= b[3]
            ]
        return min(hits)[1] if hits else None

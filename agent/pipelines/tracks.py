"""Person tracks as the people pipeline hands them to the product pipeline (the contract between the two).

The people pipeline offers each frame's tracks, normalised, with wrists where
pose ran, to :class:`TrackInbox`; the product stage of that camera takes the
newest on its own thread, so neither pipeline waits for the other.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PersonTrack:
    """One tracked person on one frame, in normalised image coordinates."""

    track_id: str
    box: Box
    member_id: str | None = None
    hands: tuple[tuple[float, float], ...] = field(default=())


#: MoveNet/COCO keypoint indices of the wrists, and the confidence a wrist needs to count as a hand.
WRISTS = (9, 10)
MIN_WRIST_SCORE = 0.3


def person_track(
    track_id: str,
    box_px: Box,
    keypoints_xy: npt.NDArray[np.float32] | None,
    keypoint_scores: npt.NDArray[np.float32] | None,
    size: tuple[int, int],
    member_id: str | None = None,
) -> PersonTrack:
    """A tracker box (frame pixels) and optional 17 COCO keypoints -> a normalised :class:`PersonTrack`.

    What the people pipeline offers per frame: wrists seen with confidence become
    ``hands``, the centres of the product-search regions (a wrist just outside the
    frame is moved to its edge, where the product in that hand is).
    """
    width, height = size
    box = (box_px[0] / width, box_px[1] / height, box_px[2] / width, box_px[3] / height)
    clipped: Box = (
        min(max(box[0], 0.0), 1.0),
        min(max(box[1], 0.0), 1.0),
        min(max(box[2], 0.0), 1.0),
        min(max(box[3], 0.0), 1.0),
    )
    hands: list[tuple[float, float]] = []
    if keypoints_xy is not None and keypoint_scores is not None:
        for k in WRISTS:
            if float(keypoint_scores[k]) >= MIN_WRIST_SCORE:
                x, y = float(keypoints_xy[k][0]) / width, float(keypoints_xy[k][1]) / height
                hands.append((min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)))
    return PersonTrack(track_id=track_id, box=clipped, member_id=member_id, hands=tuple(hands))


class TrackInbox:
    """Latest tracks per camera, written by the people pipeline, read by the product stage."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[float, tuple[PersonTrack, ...]]] = {}
        self._lock = threading.Lock()

    def offer_tracks(self, camera: str, wall_time: float, tracks: Sequence[PersonTrack]) -> None:
        with self._lock:
            self._latest[camera] = (wall_time, tuple(tracks))

    def take(self, camera: str) -> tuple[float, tuple[PersonTrack, ...]] | None:
        with self._lock:
            return self._latest.pop(camera, None)

"""``product.interest`` at shelf zones: from people tracks when the people pipeline offers them,
otherwise from sustained activity inside the zone (needs nothing but this pipeline).

The people pipeline offers each frame's tracks to ``Shared.tracks`` (a
:class:`agent.pipelines.tracks.TrackInbox`); the product stage of that camera
drains it on its own thread, so neither pipeline waits for the other.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from agent.pipelines.product.events import ProductInterest
from agent.pipelines.tracks import Box, PersonTrack


def overlaps(box: Box, zone: Box, min_fraction: float = 0.3) -> bool:
    """True when at least ``min_fraction`` of the person's box lies inside the zone."""
    ix = max(0.0, min(box[2], zone[2]) - max(box[0], zone[0]))
    iy = max(0.0, min(box[3], zone[3]) - max(box[1], zone[1]))
    area = max(1e-9, (box[2] - box[0]) * (box[3] - box[1]))
    return ix * iy / area >= min_fraction


class ShelfDwell:
    """Per track: the time it has stood at one shelf zone; one interest per visit once past ``dwell_s``."""

    def __init__(self, camera: str, zone: str, box: Box, dwell_s: float, gap_s: float = 1.5) -> None:
        self.camera, self.zone, self.box = camera, zone, box
        self.dwell_s, self.gap_s = dwell_s, gap_s
        self._visits: dict[str, tuple[float, float, bool]] = {}  # track -> (since, last seen, reported)

    def update(self, wall_time: float, tracks: Sequence[PersonTrack], sku: str | None) -> list[ProductInterest]:
        out: list[ProductInterest] = []
        for track in tracks:
            if not overlaps(track.box, self.box):
                continue
            since, last, reported = self._visits.get(track.track_id, (wall_time, wall_time, False))
            if wall_time - last > self.gap_s:
                since, reported = wall_time, False
            if not reported and wall_time - since >= self.dwell_s:
                reported = True
                out.append(
                    ProductInterest(
                        captured_at=wall_time,
                        trigger="shelf_dwell",
                        camera=self.camera,
                        zone=self.zone,
                        dwell_s=round(wall_time - since, 3),
                        sku=sku,
                        track_id=track.track_id,
                        member_id=track.member_id,
                    )
                )
            self._visits[track.track_id] = (since, wall_time, reported)
        self._visits = {k: v for k, v in self._visits.items() if wall_time - v[1] <= self.gap_s}
        return out


class ShelfActivity:
    """Without tracks: someone at the shelf shows as sustained pixel change inside the zone.

    Frame differencing on a small grey crop; activity that lasts ``dwell_s``
    (with gaps up to ``gap_s``) gives one interest per episode. It cannot tell
    people apart, so it carries no track id.
    """

    def __init__(
        self,
        camera: str,
        zone: str,
        dwell_s: float,
        threshold: int = 25,
        min_fraction: float = 0.02,
        gap_s: float = 1.5,
    ) -> None:
        self.camera, self.zone = camera, zone
        self.dwell_s, self.threshold, self.min_fraction, self.gap_s = dwell_s, threshold, min_fraction, gap_s
        self._previous: npt.NDArray[np.uint8] | None = None
        self._since: float | None = None
        self._last_active = 0.0
        self._reported = False

    def update(self, crop: npt.NDArray[np.uint8], wall_time: float, sku: str | None) -> list[ProductInterest]:
        small = cv2.cvtColor(cv2.resize(crop, (96, 96), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        grey: npt.NDArray[np.uint8] = np.asarray(cv2.GaussianBlur(small, (5, 5), 0), dtype=np.uint8)
        previous, self._previous = self._previous, grey
        if previous is None:
            return []
        moving = float(np.mean(cv2.absdiff(grey, previous) > self.threshold))
        if moving >= self.min_fraction:
            if self._since is None or wall_time - self._last_active > self.gap_s:
                self._since, self._reported = wall_time, False
            self._last_active = wall_time
        if self._since is None or self._reported or wall_time - self._last_active > self.gap_s:
            return []
        if self._last_active - self._since < self.dwell_s:
            return []
        self._reported = True
        return [
            ProductInterest(
                captured_at=wall_time,
                trigger="shelf_activity",
                camera=self.camera,
                zone=self.zone,
                dwell_s=round(self._last_active - self._since, 3),
                sku=sku,
            )
        ]

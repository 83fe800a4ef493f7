"""Motion: a cheap frame-difference detector, one episode event when motion starts and when it ends.

It needs no model, so it runs on any board and tells an installer at once
whether a camera sees the scene. A stationary scene produces no events.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from agent.events import EventBody
from agent.pipelines.motion.events import MotionEvent
from agent.pipelines.stage import Stage
from drivers.base import Frame

if TYPE_CHECKING:
    from agent.pipelines.motion.settings import MotionSettings
    from agent.pipelines.shared import Shared


class MotionStage(Stage[Frame]):
    def __init__(self, source: str, settings: MotionSettings) -> None:
        super().__init__("motion", source)
        self.settings = settings
        self._background: np.ndarray[Any, Any] | None = None
        self._active_since: float | None = None
        self._last_motion: float = 0.0
        self._peak_area = 0.0
        self._bbox = np.array([1.0, 1.0, 0.0, 0.0])
        self._last_frame_time = 0.0

    def _measure(self, frame: Frame) -> tuple[float, tuple[float, float, float, float] | None]:
        scale = min(1.0, self.settings.downscale_width / frame.width)
        small = (
            cv2.resize(frame.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            if scale < 1
            else frame.image
        )
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0).astype(np.float32)
        if self._background is None:
            self._background = grey
            return 0.0, None
        diff = cv2.absdiff(grey, self._background)
        cv2.accumulateWeighted(grey, self._background, 0.05)
        mask = cv2.dilate((diff > self.settings.threshold).astype(np.uint8), np.ones((3, 3), np.uint8))
        area = float(mask.mean())
        if area < self.settings.min_area:
            return area, None
        ys, xs = np.nonzero(mask)
        h, w = mask.shape
        return area, (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)

    def process(self, item: Frame) -> Iterable[EventBody]:
        now = item.capture.mono_ns / 1e9
        self._last_frame_time = item.capture.wall_time
        area, bbox = self._measure(item)
        events: list[EventBody] = []
        if bbox is not None:
            self._last_motion = now
            if self._active_since is None:
                self._active_since = now
                self._peak_area = area
                self._bbox = np.array(bbox)
                events.append(self._event(item.capture.wall_time, "started", area, bbox, None))
            else:
                self._peak_area = max(self._peak_area, area)
                self._bbox = np.concatenate(
                    [np.minimum(self._bbox[:2], bbox[:2]), np.maximum(self._bbox[2:], bbox[2:])]
                )
        elif self._active_since is not None and now - self._last_motion >= self.settings.end_after_s:
            events.append(self._ended(item.capture.wall_time, self._last_motion - self._active_since))
        return events

    def finish(self) -> Iterable[EventBody]:
        if self._active_since is None:
            return []
        return [self._ended(self._last_frame_time, self._last_motion - self._active_since)]

    def _ended(self, wall_time: float, duration: float) -> MotionEvent:
        bbox = tuple(float(v) for v in self._bbox)
        event = self._event(wall_time, "ended", self._peak_area, (bbox[0], bbox[1], bbox[2], bbox[3]), duration)
        self._active_since = None
        return event

    def _event(
        self, wall_time: float, state: str, area: float, bbox: tuple[float, float, float, float], duration: float | None
    ) -> MotionEvent:
        return MotionEvent(
            captured_at=wall_time,
            camera=self.source,
            state=state,
            area=round(area, 4),
            bbox=(round(bbox[0], 4), round(bbox[1], 4), round(bbox[2], 4), round(bbox[3], 4)),
            duration_s=None if duration is None else round(duration, 3),
        )


def build(settings: MotionSettings, shared: Shared) -> list[Stage[Frame]]:
    return [MotionStage(camera, settings) for camera in shared.devices.sources(settings.cameras, "camera")]

"""A synthetic camera: moving figures over a static background, like GStreamer's videotestsrc.

Used by installers to check the pipeline end to end without a camera, and by
the built-in demo so it runs on a fresh clone without any media files.
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np

from drivers.base import DeviceError, DeviceOptions, Driver, EndOfStream, Frame
from drivers.camera.options import TestPatternOptions
from drivers.pacing import Pacer


class TestPatternCamera(Driver[Frame, TestPatternOptions]):
    __test__ = False  # not a pytest class despite the name
    Options: ClassVar[type[DeviceOptions]] = TestPatternOptions
    is_replay: ClassVar[bool] = True

    def __init__(self, options: TestPatternOptions) -> None:
        super().__init__(options)
        self._pacer: Pacer | None = None
        self._index = 0
        self._background: np.ndarray[Any, Any] = np.zeros((1, 1, 3), np.uint8)
        self._plan: list[tuple[float, float, float, tuple[int, int, int]]] = []

    @property
    def realtime(self) -> bool:
        return self.options.realtime

    @property
    def endless(self) -> bool:
        return self.options.frames == 0

    def open(self) -> None:
        o = self.options
        if o.width * o.height > 3840 * 2160:
            raise DeviceError(f"camera {self.name}: pattern too large")
        rng = np.random.default_rng(o.seed)
        ys = np.linspace(60, 200, o.height, dtype=np.float32)[:, None]
        grey = np.repeat(ys, o.width, axis=1).astype(np.uint8)
        self._background = cv2.merge([grey, grey, grey])
        cv2.rectangle(self._background, (0, int(o.height * 0.8)), (o.width, o.height), (90, 90, 90), -1)
        self._plan = []
        for _ in range(o.walkers):
            crossing_s = float(rng.uniform(3.0, 5.0))
            period_s = crossing_s + float(rng.uniform(4.0, 10.0))
            offset_s = float(rng.uniform(0.0, period_s))
            colour = tuple(int(c) for c in rng.integers(40, 230, size=3))
            self._plan.append((period_s, offset_s, crossing_s, (colour[0], colour[1], colour[2])))
        self._pacer = Pacer(o.fps, o.realtime)
        self._index = 0

    def _draw(self, index: int) -> np.ndarray:
        o = self.options
        image: np.ndarray = self._background.copy()
        for n, (period_s, offset_s, crossing_s, colour) in enumerate(self._plan):
            phase_s = (index / o.fps + offset_s) % period_s
            if phase_s > crossing_s:
                continue  # off-screen: the walker pauses between crossings
            x = phase_s / crossing_s * (o.width + 40) - 40
            if n % 2:
                x = o.width - x - 40
            h = int(o.height * 0.45)
            top = int(o.height * 0.8) - h
            cv2.rectangle(image, (int(x), top + h // 5), (int(x) + 40, top + h), colour, -1)
            cv2.circle(image, (int(x) + 20, top + h // 10), h // 10, colour, -1)
        cv2.putText(image, f"{self.name} #{index}", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
        return image

    def read(self, timeout: float) -> Frame | None:
        if self._pacer is None:
            raise DeviceError(f"camera {self.name}: read before open")
        if self.options.frames and self._index >= self.options.frames:
            raise EndOfStream(f"camera {self.name}: {self.options.frames} frames done")
        if not self._pacer.wait_for(self._index, timeout):
            return None
        image = self._draw(self._index)
        offset = self._index / self.options.fps
        self._index += 1
        return Frame(source=self.name, capture=self.next_capture(offset), image=image)

    def close(self) -> None:
        self._pacer = None

    def describe(self) -> str:
        o = self.options
        return f"test-pattern {o.width}x{o.height}@{o.fps:g}"

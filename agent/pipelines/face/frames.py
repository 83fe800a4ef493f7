"""The newest frame of each face camera, kept for enrolment at a kiosk (``enroll-member`` with ``camera``)."""

from __future__ import annotations

import threading
import time

import numpy as np
import numpy.typing as npt


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

"""The newest frame of each face camera, kept for enrolment at a kiosk (``enroll-member`` with ``camera``)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt


class LatestFrames:
    """The newest frame per camera (a reference to the driver's immutable copy; nothing is written anywhere)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frames: dict[str, tuple[int, npt.NDArray[np.uint8]]] = {}
        self._times: dict[str, float] = {}

    def put(self, camera: str, seq: int, image: npt.NDArray[np.uint8], captured_s: float | None = None) -> None:
        """The newest frame of ``camera``; ``captured_s`` is its capture time (monotonic seconds)."""
        with self._cond:
            self._frames[camera] = (seq, image)
            self._times[camera] = time.monotonic() if captured_s is None else captured_s
            self._cond.notify_all()

    def _changed(self, camera: str, seq: int) -> bool:
        return self._frames.get(camera, (-1, None))[0] != seq

    def stream(self, camera: str, timeout_s: float) -> Iterator[tuple[float, npt.NDArray[np.uint8]]]:
        """Every new frame of ``camera`` (capture time, image) as it arrives, for at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            last = self._frames.get(camera, (-1, None))[0]
        while (remaining := deadline - time.monotonic()) > 0:
            with self._cond:
                self._cond.wait_for(functools.partial(self._changed, camera, last), remaining)
                seq, image = self._frames.get(camera, (-1, None))
                captured = self._times.get(camera, 0.0)
            if image is None or seq == last:
                continue
            last = seq
            yield captured, image

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

"""Achieved rate and capture-to-event latency of one worker over a sliding window.

Health shows these per pipeline so a store sees a terminal falling behind (fps below its camera's, latency
rising) before events go missing; the overload controller reads the same figures.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np

WINDOW_S = 30.0


class RateWindow:
    """Items finished in the last ``window_s`` seconds, each with its capture-to-done latency (if known)."""

    def __init__(self, window_s: float = WINDOW_S, maxlen: int = 4096) -> None:
        self.window_s = window_s
        self._done: deque[tuple[float, float]] = deque(maxlen=maxlen)  # (done monotonic s, latency s or nan)
        self._lock = threading.Lock()
        self._first: float | None = None

    def add(self, done_mono: float, latency_s: float | None) -> None:
        with self._lock:
            if self._first is None:
                self._first = done_mono
            self._done.append((done_mono, float("nan") if latency_s is None else latency_s))

    def _recent(self, now: float) -> list[tuple[float, float]]:
        with self._lock:
            while self._done and now - self._done[0][0] > self.window_s:
                self._done.popleft()
            return list(self._done)

    def fps(self, now: float | None = None) -> float:
        """Items per second over the window (over the time since the first item while that is shorter)."""
        now = time.monotonic() if now is None else now
        recent = self._recent(now)
        if not recent or self._first is None:
            return 0.0
        span = min(self.window_s, now - self._first)
        if span <= 0.0 or len(recent) < 2:
            return 0.0
        return len(recent) / span

    def latency_ms(self, now: float | None = None) -> dict[str, Any]:
        """p50 and p99 of capture-to-done latency over the window, in ms (``None`` when nothing was timed)."""
        now = time.monotonic() if now is None else now
        values = np.array([lat for _, lat in self._recent(now)], dtype=np.float64)
        values = values[~np.isnan(values)]
        if values.size == 0:
            return {"p50": None, "p99": None, "n": 0}
        p50, p99 = np.percentile(values, [50, 99]) * 1000.0
        return {"p50": round(float(p50), 1), "p99": round(float(p99), 1), "n": int(values.size)}

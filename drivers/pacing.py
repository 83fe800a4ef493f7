"""Pacing for replay sources: deliver item *i* at ``start + i / rate`` in real-time mode.

In as-fast-as-possible mode nothing waits; the runtime applies back-pressure
instead of dropping, so a replay run is deterministic.
"""

from __future__ import annotations

import time


class Pacer:
    def __init__(self, rate_hz: float, realtime: bool) -> None:
        if rate_hz <= 0:
            raise ValueError(f"replay rate must be positive (got {rate_hz})")
        self.rate_hz = rate_hz
        self.realtime = realtime
        self._start: float | None = None

    def restart(self) -> None:
        self._start = None

    def wait_for(self, index: int, timeout: float) -> bool:
        """Wait until item ``index`` is due; ``False`` if it is not due within ``timeout``."""
        if not self.realtime:
            return True
        now = time.monotonic()
        if self._start is None:
            self._start = now - index / self.rate_hz
        due = self._start + index / self.rate_hz
        delay = due - now
        if delay > timeout:
            time.sleep(timeout)
            return False
        if delay > 0:
            time.sleep(delay)
        return True
